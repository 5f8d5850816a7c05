"""RFC 4733 telephone-events: DTMF key presses sent as RTP packets instead of tones.

The payload is one or more 4-octet blocks (section 2.3)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |     event     |E|R| volume    |          duration             |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

Events 0-9 are the digits, 10 is ``*``, 11 ``#``, 12-15 ``A``-``D`` and 16
flash (section 3). E marks the end of the event (section 2.3.2); volume is
the tone's power as a positive number of dB below 0 dBm0 (0..63, section
2.3.4); duration counts timestamp units from the event's start (section
2.3.5), which is the RTP timestamp of every packet of the event (section
2.2.1).

One press travels in many packets (section 2.5.1): a first one with the
marker bit, updates with a growing duration, and the final one, with E,
sent three times; any of them may be lost, swapped or repeated. So
:class:`DigitTracker` keys a press by its RTP timestamp and event code, and
reports each press once (:class:`DigitPressed`, on whichever packet
arrives first) and its end once (:class:`DigitReleased`). The key ignores
the SSRC: a press that continues after a change of source, with the same
timestamp, is the same press; a new timestamp is a new press, except the
next segment of a long event (sections 2.5.1.3 and 2.5.2.3: an event
longer than the 16-bit duration goes on with a new timestamp where the
previous segment ended).
"""

from __future__ import annotations

import re
import struct
from collections import deque
from dataclasses import dataclass

from ivr.transport.rtp.errors import InvalidField, MalformedEvent
from ivr.transport.rtp.sequence import TIMESTAMP_MOD, timestamp_delta

EVENT_BYTES = 4
DIGITS = "0123456789*#ABCD"  # section 3: events 0-15, in this order
FLASH = 16
MAX_VOLUME = 63
MAX_DURATION = 0xFFFF
DEFAULT_VOLUME = 10  # -10 dBm0, a usual DTMF level
END_REPEATS = 3  # section 2.5.1.4: the final packet is sent three times
EVENT_TIMEOUT_S = 0.5  # no update for this long: the end packets were lost
_REMEMBERED = 32  # presses remembered, to ignore their late retransmissions
DEFAULT_EVENTS = frozenset(range(16))  # section 2.4: no events parameter means 0-15

_BLOCK = struct.Struct("!BBH")


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One event block of a telephone-event payload."""

    event: int
    end: bool = False
    volume: int = 0
    duration: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 255:
            raise InvalidField(f"event code must be 0..255, not {self.event}")
        if not 0 <= self.volume <= MAX_VOLUME:
            raise InvalidField(f"volume must be 0..{MAX_VOLUME} (-dBm0), not {self.volume}")
        if not 0 <= self.duration <= MAX_DURATION:
            raise InvalidField(f"duration must be 0..{MAX_DURATION}, not {self.duration}")

    @property
    def digit(self) -> str | None:
        """The DTMF digit of events 0-15; None for any other event."""
        return DIGITS[self.event] if self.event < len(DIGITS) else None

    @property
    def volume_dbm0(self) -> int:
        return -self.volume

    def to_bytes(self) -> bytes:
        # The R bit is reserved: sent as zero, ignored on receipt (section 2.3.3).
        return _BLOCK.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)


def event_code(digit: str) -> int:
    """The event code of a DTMF digit (``0-9 * # A-D``, either case)."""
    code = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if code < 0:
        raise InvalidField(f"{digit!r} is not a DTMF digit; use one of {DIGITS}")
    return code


def parse_event_list(value: str | None) -> frozenset[int]:
    """An RFC 4733 events list (``0-15,66,70``); absent means 0-15 (section 2.4)."""
    if value is None:
        return DEFAULT_EVENTS
    events: set[int] = set()
    for item in value.replace(" ", "").split(","):
        match = re.fullmatch(r"([0-9]{1,3})(?:-([0-9]{1,3}))?", item)
        if match:
            low = int(match.group(1))
            high = int(match.group(2) or low)
            events.update(range(low, min(high, 255) + 1))
    return frozenset(events)


def render_event_list(events: frozenset[int]) -> str:
    """Events as an RFC 4733 list of ranges: ``0-15``, ``0-11,16``."""
    parts: list[str] = []
    for e in sorted(events):
        if parts and e - 1 == int(parts[-1].split("-")[-1]):
            parts[-1] = f"{parts[-1].split('-')[0]}-{e}"
        else:
            parts.append(str(e))
    return ",".join(parts)


def parse_events(payload: bytes) -> tuple[TelephoneEvent, ...]:
    """The event blocks of a payload; :class:`MalformedEvent` unless whole 4-octet blocks."""
    if not payload or len(payload) % EVENT_BYTES:
        raise MalformedEvent(f"a telephone-event payload of {len(payload)} octets, not 4 x n")
    return tuple(
        TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)
        for event, flags, duration in _BLOCK.iter_unpack(payload)
    )


def build_events(events: tuple[TelephoneEvent, ...] | list[TelephoneEvent]) -> bytes:
    return b"".join(e.to_bytes() for e in events)


@dataclass(frozen=True, slots=True)
class DigitPressed:
    """A key was pressed: reported once per press, as soon as any of its packets arrives."""

    digit: str
    timestamp: int  # the event's RTP timestamp: it identifies the press
    volume_dbm0: int


@dataclass(frozen=True, slots=True)
class DigitReleased:
    """A press ended; ``ended`` is False when its end packets never came (inferred)."""

    digit: str
    timestamp: int
    duration: int  # timestamp units, every segment of a long event together
    duration_ms: int
    volume_dbm0: int
    ended: bool


DigitEvent = DigitPressed | DigitReleased


@dataclass(slots=True)
class _Press:
    code: int
    timestamp: int  # the current segment's timestamp
    first_timestamp: int  # the press's own (the first segment's)
    base: int  # duration of the segments before the current one
    duration: int
    volume: int
    ended: bool
    updated_s: float


class DigitTracker:
    """Turns telephone-event blocks into one press and one release per key press."""

    __slots__ = ("_current", "_seen", "_seen_set", "clock_rate", "presses")

    def __init__(self, clock_rate: int = 8000) -> None:
        self.clock_rate = clock_rate
        self._current: _Press | None = None
        self._seen: deque[tuple[int, int]] = deque()
        self._seen_set: set[tuple[int, int]] = set()
        self.presses = 0

    def observe(
        self,
        timestamp: int,
        events: tuple[TelephoneEvent, ...],
        arrival_s: float,
    ) -> list[DigitEvent]:
        """Take one packet's event blocks; return the presses and releases it makes.

        Several blocks in one packet follow each other (sections 2.5.1.5 and
        2.5.2.4): each after the first begins where the one before it ended.
        """
        out: list[DigitEvent] = []
        start = timestamp
        for event in events:
            if event.digit is not None:
                self._one(start, event, arrival_s, out)
            start = (start + event.duration) % TIMESTAMP_MOD
        return out

    def expire(self, now_s: float, timeout_s: float = EVENT_TIMEOUT_S) -> list[DigitEvent]:
        """End a press whose packets stopped without an end packet (all three lost)."""
        press = self._current
        if press is None or press.ended or now_s - press.updated_s < timeout_s:
            return []
        press.ended = True
        return [self._released(press, ended=False)]

    def _one(
        self, start: int, event: TelephoneEvent, arrival_s: float, out: list[DigitEvent]
    ) -> None:
        key = (start, event.event)
        press = self._current
        if press is not None and (press.timestamp, press.code) == key:
            # Another packet of the press in progress: an update or an end.
            press.duration = max(press.duration, event.duration)
            press.volume = event.volume
            press.updated_s = arrival_s
            if event.end and not press.ended:
                press.ended = True
                out.append(self._released(press, ended=True))
            return
        if key in self._seen_set:
            return  # a late copy of a press already over
        self._remember(key)
        if (
            press is not None
            and not press.ended
            and press.code == event.event
            and press.duration > 0
            and timestamp_delta(start, press.timestamp) == press.duration
        ):
            # The next segment of a long event (section 2.5.2.3): the same press.
            press.base += press.duration
            press.timestamp = start
            press.duration = event.duration
            press.updated_s = arrival_s
            if event.end:
                press.ended = True
                out.append(self._released(press, ended=True))
            return
        if press is not None and not press.ended:
            press.ended = True  # a new press ends the one whose end packets were lost
            out.append(self._released(press, ended=False))
        press = _Press(
            event.event, start, start, 0, event.duration, event.volume, event.end, arrival_s
        )
        self._current = press
        self.presses += 1
        out.append(DigitPressed(DIGITS[event.event], start, -event.volume))
        if event.end:
            out.append(self._released(press, ended=True))

    def _released(self, press: _Press, *, ended: bool) -> DigitReleased:
        total = press.base + press.duration
        return DigitReleased(
            digit=DIGITS[press.code],
            timestamp=press.first_timestamp,
            duration=total,
            duration_ms=total * 1000 // self.clock_rate,
            volume_dbm0=-press.volume,
            ended=ended,
        )

    def _remember(self, key: tuple[int, int]) -> None:
        self._seen.append(key)
        self._seen_set.add(key)
        if len(self._seen) > _REMEMBERED:
            self._seen_set.discard(self._seen.popleft())
