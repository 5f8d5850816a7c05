"""What one connection may send (docs/protocol.md, "Limits"), and its error count.

Control messages, DTMF digits and audio frames each have a token bucket
(:mod:`ivr.transport.rate`): a client that sends in real time never meets
them. Going over one is answered ``rate_limited`` and the connection is
closed with 1008. Every protocol error counts against the connection
(:class:`ErrorCount`); past ``MAX_ERRORS`` it is ``too_many_errors``, 1008.
"""

from __future__ import annotations

from ivr.call.leg import Transport
from ivr.call.metrics import CallMetrics
from ivr.transport.protocol import MAX_ERRORS, ProtocolError
from ivr.transport.rate import Rate, TokenBucket

FIRST_MESSAGE_TIMEOUT_S = 30.0
# A person presses a key a few times a second; a message may carry up to 32
# digits (a card number in one go), hence the burst.
MESSAGE_RATE = Rate(per_s=20, burst=50)  # control messages
DIGIT_RATE = Rate(per_s=10, burst=64)  # DTMF digits, counted one by one
# Real time is 50 frames a second; a network hiccup may bring 3 s at once.
FRAME_RATE = Rate(per_s=75, burst=150)


class Limits:
    """The rate limits of one connection."""

    __slots__ = ("digits", "frames", "messages")

    def __init__(self) -> None:
        self.messages = TokenBucket(MESSAGE_RATE)
        self.digits = TokenBucket(DIGIT_RATE)
        self.frames = TokenBucket(FRAME_RATE)


def over(what: str, rate: Rate) -> str:
    """The ``rate_limited`` message for going over ``rate`` of ``what``."""
    return f"more than {rate.per_s:g} {what} a second (burst {rate.burst}): closing"


class ErrorCount:
    """A connection's protocol errors: each is sent; past the limit, the connection closes."""

    def __init__(self, transport: Transport, metrics: CallMetrics | None = None) -> None:
        self.count = 0
        self._t = transport
        self._metrics = metrics

    def report(self, err: ProtocolError) -> bool:
        """Send the error; True when the client has now misbehaved too often (closed, 1008)."""
        self.count += 1
        self._t.send_message(err.as_message())
        if self.count > MAX_ERRORS:
            self._t.send_message(
                {
                    "type": "error",
                    "code": "too_many_errors",
                    "message": f"more than {MAX_ERRORS} errors: closing",
                }
            )
            if self._metrics is not None:
                self._metrics.limit_close("too_many_errors")
            self._t.close(1008)
            return True
        return False
