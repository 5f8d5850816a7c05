"""Timestamps and ids in the one form the whole softswitch writes them.

Times are ISO 8601 in UTC with milliseconds and a ``Z`` (they sort as
text); ids are a short prefix naming the kind (``c_`` a call, ``r_`` a
recording, ``u_`` a user...) and 64 random bits. A leaf: it imports nothing
of ivr, so the call path stamps its facts without importing the store.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta

Sources = tuple[Callable[[], datetime], Callable[[int], str]]
_sources: ContextVar[Sources | None] = ContextVar("ivr_stamp_sources", default=None)


def _now() -> datetime:
    src = _sources.get()
    return src[0]() if src is not None else datetime.now(UTC)


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
    src = _sources.get()
    return f"{prefix}_{src[1](8) if src is not None else secrets.token_hex(8)}"


def use_sources(now: Callable[[], datetime], token: Callable[[int], str]) -> None:
    """In the current context only, stamp times from ``now`` and ids from ``token``.

    The simulator's clock and seeded randomness (:mod:`ivr.simulate`): a
    switch runs its tasks in a context of its own where this was called, so
    its calls get the same ids and times from the same seed, and nothing
    else in the process (another switch, another thread's loop) is touched.
    ``token(n)`` gives the hex of n bytes.
    """
    _sources.set((now, token))
