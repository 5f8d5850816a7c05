"""A small reorder buffer: packets in by extended sequence number, out in order.

The network may swap packets; the leg's jitter buffer (``ivr.call.leg``)
only queues frames in arrival order. So before packets become frames they
pass through this buffer, which releases them strictly in sequence order:

* a packet that is next in sequence goes out at once, with everything held
  behind it: in-order traffic is never delayed;
* a gap holds later packets back, until the missing one arrives, or a
  packet ``window`` or more numbers past the gap arrives, or the oldest held
  packet has waited ``max_hold_s`` (:meth:`ReorderBuffer.expire`, called by
  the driver each tick); then the gap is given up as lost (``skipped``);
* a packet for a number already released (a duplicate) or given up (late)
  is dropped and counted, and so is a second copy of one still held.

Items are whatever the caller stores with the number (packets, here); the
buffer looks only at the numbers, which must be extended (never wrapping:
:func:`ivr.transport.rtp.sequence.extend_sequence`).
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

from ivr.transport.rtp.errors import InvalidField

T = TypeVar("T")

DEFAULT_WINDOW = 8  # packets: 80 ms at 10 ms ptime, 160 ms at 20 ms
DEFAULT_MAX_HOLD_S = 0.06  # a gap is waited for at most 60 ms
_REMEMBERED = 128  # released numbers kept to tell duplicates from late packets


class ReorderBuffer(Generic[T]):
    """Releases items in sequence order, waiting a bounded time for gaps to fill."""

    __slots__ = (
        "_held",
        "_next",
        "_recent",
        "_recent_set",
        "duplicates",
        "late",
        "released",
        "skipped",
        "window",
    )

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        if window < 1:
            raise InvalidField(f"a reorder window holds at least 1 packet, not {window}")
        self.window = window
        self._next: int | None = None
        self._held: dict[int, tuple[T, float]] = {}
        self._recent: deque[int] = deque()
        self._recent_set: set[int] = set()
        self.duplicates = 0
        self.late = 0
        self.skipped = 0  # numbers given up on: lost as far as playout goes
        self.released = 0

    @property
    def held(self) -> int:
        return len(self._held)

    def push(self, extended: int, item: T, arrival_s: float) -> list[T]:
        """Take one item; return those now in order (possibly none, possibly several)."""
        if self._next is None:
            self._next = extended
        if extended == self._next and not self._held:
            # The common case, the next packet with nothing held: released at once,
            # as the general path below would (held, then drained), without the
            # dict and list traffic.
            self._released(extended)
            return [item]
        if extended < self._next:
            if extended in self._recent_set:
                self.duplicates += 1
            else:
                self.late += 1
            return []
        if extended in self._held:
            self.duplicates += 1
            return []
        self._held[extended] = (item, arrival_s)
        out: list[T] = []
        if extended - self._next >= self.window:
            self._skip_to(extended - self.window + 1, out)
        self._drain(out)
        return out

    def is_next(self, extended: int) -> bool:
        """True if :meth:`push` would release ``extended`` at once, alone."""
        return extended == self._next and not self._held

    def take_next(self, extended: int) -> None:
        """After :meth:`is_next`: what :meth:`push` does then, without its list."""
        self._released(extended)

    def expire(self, now_s: float, max_hold_s: float = DEFAULT_MAX_HOLD_S) -> list[T]:
        """Give up the gaps that held a packet longer than ``max_hold_s``; return what follows."""
        out: list[T] = []
        while self._held and min(t for _, t in self._held.values()) <= now_s - max_hold_s:
            self._skip_to(min(self._held), out)
            self._drain(out)
        return out

    def flush(self) -> list[T]:
        """Release everything held, in order, and forget the position (a new source starts)."""
        out: list[T] = []
        while self._held:
            self._skip_to(min(self._held), out)
            self._drain(out)
        self._next = None
        return out

    def _skip_to(self, target: int, out: list[T]) -> None:
        """Move the position to ``target``, releasing what is held before it and counting gaps."""
        assert self._next is not None
        for number in sorted(n for n in self._held if n < target):
            self.skipped += number - self._next
            self._release(number, out)
        if target > self._next:
            self.skipped += target - self._next
            self._next = target

    def _drain(self, out: list[T]) -> None:
        while self._next in self._held:
            self._release(self._next, out)

    def _release(self, number: int, out: list[T]) -> None:
        item, _ = self._held.pop(number)
        out.append(item)
        self._released(number)

    def _released(self, number: int) -> None:
        """``number`` went out: the position moves past it, and it is remembered a while."""
        self.released += 1
        self._next = number + 1
        self._recent.append(number)
        self._recent_set.add(number)
        if len(self._recent) > _REMEMBERED:
            self._recent_set.discard(self._recent.popleft())
