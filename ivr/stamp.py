"""Timestamps and ids in the one form the whole softswitch writes them.

Times are ISO 8601 in UTC with milliseconds and a ``Z`` (they sort as
text); ids are a short prefix naming the kind (``c_`` a call, ``r_`` a
recording, ``u_`` a user...) and 64 random bits. A leaf: it imports nothing
of ivr, so the call path stamps its facts without importing the store.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta


def iso(at: datetime) -> str:
    """``at`` as ISO 8601 UTC with milliseconds."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    """The current time as ISO 8601 UTC with milliseconds."""
    return iso(datetime.now(UTC))


def expiry(retention_days: int, start: datetime | None = None) -> str:
    """When something made at ``start`` (default: now) must be deleted."""
    return iso((start or datetime.now(UTC)) + timedelta(days=retention_days))


def new_id(prefix: str) -> str:
    """A new id of the kind ``prefix`` names: ``c_3f9a...`` (64 random bits)."""
    return f"{prefix}_{secrets.token_hex(8)}"
