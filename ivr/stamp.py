"""Timestamps and ids in the one form the whole softswitch writes them.

Times are ISO 8601 in UTC with milliseconds and a ``Z`` (they sort as
text); ids are a short prefix naming the kind (``c_`` a call, ``r_`` a
recording, ``u_`` a user...) and 64 random bits. A leaf: it imports nothing
of ivr, so the call path stamps its facts without importing the store.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

_now: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731
_token: Callable[[int], str] = secrets.token_hex


def iso(at: datetime) -> str:
    """``at`` as ISO 8601 UTC with milliseconds."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    """The current time as ISO 8601 UTC with milliseconds."""
    return iso(_now())


def expiry(retention_days: int, start: datetime | None = None) -> str:
    """When something made at ``start`` (default: now) must be deleted."""
    return iso((start or _now()) + timedelta(days=retention_days))


def new_id(prefix: str) -> str:
    """A new id of the kind ``prefix`` names: ``c_3f9a...`` (64 random bits)."""
    return f"{prefix}_{_token(8)}"


@contextmanager
def sources(now: Callable[[], datetime], token: Callable[[int], str]) -> Iterator[None]:
    """Stamp times from ``now`` and ids from ``token`` (hex of n bytes) for a while.

    The simulator's clock and seeded randomness (:mod:`ivr.simulate`): its
    calls get the same ids and times from the same seed. Everything else
    stamps from the wall clock and ``secrets``.
    """
    global _now, _token
    saved = _now, _token
    _now, _token = now, token
    try:
        yield
    finally:
        _now, _token = saved
