"""Rate limits for what one connection may send: token buckets on an injected clock.

A bucket holds at most ``burst`` tokens and gains ``per_s`` tokens a second;
each message (or digit, or frame) takes one. A client that sends faster than
``per_s`` for longer than the burst allows is over its limit: the WebSocket
edge answers ``rate_limited`` and closes (docs/protocol.md, "Limits"). The
clock is passed in, so tests drive it by hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rate:
    """A sustained rate and the burst allowed above it."""

    per_s: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_s <= 0 or self.burst < 1:
            raise ValueError(f"a rate needs per_s > 0 and burst >= 1, not {self}")


class TokenBucket:
    """Admits ``take(n)`` while the tokens last; refills continuously."""

    __slots__ = ("_last", "_now", "_tokens", "rate")

    def __init__(self, rate: Rate, now: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._now = now
        self._tokens = float(rate.burst)
        self._last = now()

    def take(self, n: int = 1) -> bool:
        """Take ``n`` tokens; False (and nothing taken) if there are not enough."""
        now = self._now()
        tokens = min(self.rate.burst, self._tokens + (now - self._last) * self.rate.per_s)
        self._last = now
        if tokens < n:
            self._tokens = tokens
            return False
        self._tokens = tokens - n
        return True
