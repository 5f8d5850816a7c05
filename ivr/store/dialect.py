"""What SQL differs between the backends: SQLite's here, PostgreSQL's in :mod:`ivr.store.postgres`.

The repositories write plain SQL (SELECT, JOIN, row values, COALESCE,
``ON CONFLICT``, ``RETURNING``) with ``?`` marks, which both backends run
(PostgreSQL's dialect translates the marks, :meth:`Dialect.prepare`). The
statement builders below (inserts, upserts, "insert unless present",
``RETURNING``) produce SQL both accept. Whatever else differs is a method
of :class:`Dialect`, reached at run time through the database
(``self._db.dialect``): JSON functions, date arithmetic, summing a
condition, skipping rows another writer has locked, and which driver errors
mean a failing disk or a broken constraint. :data:`SQLITE` is SQLite's; the
PRAGMAs below are SQLite's alone. The schema (:mod:`ivr.store.schema`, with
its triggers and ``strftime``) is SQLite's; PostgreSQL has migrations of its
own (:mod:`ivr.store.pg_schema`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

PARAM = "?"
"""The store's positional parameter mark (PostgreSQL's dialect makes it ``%s``)."""

# -- connection and schema ---------------------------------------------------------

CONNECT = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    # Deleted rows are overwritten, so an erased number is not left in free pages.
    "PRAGMA secure_delete=ON",
)
"""Run once on every new connection."""

SCHEMA_VERSION = "PRAGMA user_version"
"""Read the number of migrations applied."""

FOREIGN_KEYS_OFF = "PRAGMA foreign_keys=OFF"
FOREIGN_KEYS_ON = "PRAGMA foreign_keys=ON"
FOREIGN_KEY_CHECK = "PRAGMA foreign_key_check"
BEGIN = "BEGIN"

CHECKPOINT = "PRAGMA wal_checkpoint(TRUNCATE)"
"""Fold the write-ahead log into the database and empty it (after an erasure)."""

StorageFailure: type[Exception] = sqlite3.OperationalError
"""What the driver raises when the disk refuses a write (SQLITE_FULL, SQLITE_IOERR, ...)."""

IntegrityFailure: type[Exception] = sqlite3.IntegrityError
"""What the driver raises for a broken constraint (a unique e-mail, a deleted parent)."""


def set_schema_version(version: int) -> str:
    """Record that ``version`` migrations are applied (an integer, never user input)."""
    return f"PRAGMA user_version = {int(version)}"


# -- statements ------------------------------------------------------------------------


def marks(count: int) -> str:
    """``count`` parameter marks, comma separated."""
    return ", ".join(PARAM for _ in range(count))


def in_list(values: Sequence[object]) -> str:
    """The right side of ``x IN (...)`` for ``values``; an empty list matches nothing."""
    return f"({marks(len(values)) or 'NULL'})"


def insert(table: str, columns: Sequence[str]) -> str:
    """``INSERT INTO table (columns) VALUES (marks)``."""
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks(len(columns))})"


def insert_absent(table: str, columns: Sequence[str], key: Sequence[str], select: str = "") -> str:
    """Insert unless a row with the same ``key`` exists (then nothing happens).

    ``select``, when given, is a SELECT with a WHERE clause that provides
    the rows (SQLite needs the WHERE to parse the upsert after a SELECT).
    """
    source = select or f"VALUES ({marks(len(columns))})"
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) {source} "
        f"ON CONFLICT ({', '.join(key)}) DO NOTHING"
    )


def upsert(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    """Insert, or update every column but ``key`` of the row with the same ``key``."""
    sets = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return f"{insert(table, columns)} ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"


def returning(*columns: str) -> str:
    """The clause that makes a write statement return the rows it wrote."""
    return f" RETURNING {', '.join(columns)}"


# -- expressions -----------------------------------------------------------------------


def json_field(column: str, key: str) -> str:
    """The value at top-level ``key`` of a JSON text column."""
    return f"json_extract({column}, '$.{key}')"


def json_with(column: str, key: str) -> str:
    """The JSON text of ``column`` with top-level ``key`` set to the next parameter."""
    return f"json_set({column}, '$.{key}', {PARAM})"


def seconds_between(start: str, end: str) -> str:
    """Seconds from ``start`` to ``end``, two ISO 8601 text columns."""
    return f"(julianday({end}) - julianday({start})) * 86400.0"


def minutes_between(start: str, end: str) -> str:
    """Minutes from ``start`` to ``end``, two ISO 8601 text columns."""
    return f"(julianday({end}) - julianday({start})) * 1440.0"


def count_if(condition: str) -> str:
    """How many rows of the group meet ``condition`` (NULL for no rows, as SUM is)."""
    return f"SUM({condition})"


def json_true(column: str, key: str) -> str:
    """Whether top-level ``key`` of a JSON text column is true (false when absent)."""
    return f"COALESCE({json_field(column, key)}, 0)"


class Dialect:
    """One backend's SQL differences; this class is SQLite's, :data:`SQLITE` its instance."""

    name = "sqlite"
    storage_failures: tuple[type[Exception], ...] = (StorageFailure,)
    """Errors meaning the disk (or the server) refused a write: worth trying again."""
    integrity_failures: tuple[type[Exception], ...] = (IntegrityFailure,)
    """Errors meaning a broken constraint (a unique e-mail, a deleted parent)."""
    skip_locked = ""
    """Appended to ``SELECT ... LIMIT n`` to pass over rows another writer holds."""
    lock_row = ""
    """Appended to a ``SELECT`` to hold its rows until the unit of work ends."""

    def prepare(self, sql: str) -> str:
        """The statement as the driver takes it (SQLite takes ``?`` as it is)."""
        return sql

    def json_field(self, column: str, key: str) -> str:
        """The value at top-level ``key`` of a JSON text column, as text."""
        return json_field(column, key)

    def json_with(self, column: str, key: str) -> str:
        """The JSON text of ``column`` with top-level ``key`` set to the next parameter."""
        return json_with(column, key)

    def json_true(self, column: str, key: str) -> str:
        """A condition: top-level ``key`` of a JSON text column is true."""
        return json_true(column, key)

    def seconds_between(self, start: str, end: str) -> str:
        """Seconds from ``start`` to ``end``, two ISO 8601 text columns."""
        return seconds_between(start, end)

    def minutes_between(self, start: str, end: str) -> str:
        """Minutes from ``start`` to ``end``, two ISO 8601 text columns."""
        return minutes_between(start, end)

    def count_if(self, condition: str) -> str:
        """How many rows of the group meet ``condition``."""
        return count_if(condition)


SQLITE = Dialect()
"""SQLite's dialect."""
