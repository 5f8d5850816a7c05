"""The store: every table of the softswitch, and all of its SQL (only here).

An embedded SQLite database (WAL) and the recordings folder, behind a small
async interface that a PostgreSQL backend will implement too.
"""

from ivr.store.db import ROLES, Role, StorageHealth, Store, User, decode_cursor
from ivr.store.schema import MIGRATIONS

__all__ = [
    "MIGRATIONS",
    "ROLES",
    "Role",
    "StorageHealth",
    "Store",
    "User",
    "decode_cursor",
]
