"""The send path of one call: the switch's 20 ms frames in, RTP packets out.

The leg hands its transport one encoded 20 ms frame per media-clock tick
(``Transport.send_audio``); the driver passes each to :meth:`RtpSender.push`
and sends the datagrams it returns. The sender:

* packs frames at the negotiated ptime: two packets per frame at 10 ms,
  one per frame at 20, three per two frames at 30 (a packet may span two
  frames), one per two frames at 40. A packet's timestamp is that of its
  first sample;
* starts its SSRC, sequence number and timestamp at random values (RFC 3550
  sections 5.1 and 8.1), drawn by the driver's ``randbits`` (this module
  reads no entropy source, like no clock);
* sets the marker bit on the first packet of a talkspurt (RFC 3551 section
  4.1): the switch sends audio every tick, so that is the first packet of
  the stream and the first after the peer takes us off hold;
* sends nothing while ``sending`` is false (the peer holds us: ``sendonly``,
  ``inactive`` or ``c=0.0.0.0`` in its SDP), but keeps the timestamp running
  with the ticks, so it goes on linearly in time when sending resumes;
* sends a queued key press as RFC 4733 events in place of the audio for its
  duration (section 2.5.1.2): a first packet with the marker bit, an update
  each packet interval, the final packet with the E bit sent three times
  (section 2.5.1.4), then audio resumes on the same timeline.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ivr.transport.rtp.errors import InvalidField
from ivr.transport.rtp.events import (
    DEFAULT_VOLUME,
    END_REPEATS,
    TelephoneEvent,
    event_code,
)
from ivr.transport.rtp.framing import PCMA, PCMU, SILENCE, transcode
from ivr.transport.rtp.packet import SEQUENCE_MOD, TIMESTAMP_MOD, RtpPacket, pack_header
from ivr.transport.rtp.sequence import timestamp_delta

CLOCK_RATE = 8000
FRAME_SAMPLES = 160  # one 20 ms G.711 frame from the switch
PTIMES_MS = (10, 20, 30, 40)
DIGITS_ALL = frozenset(range(16))
# A press is one event segment: 8 s, with room for the part-packet it may
# start early by, stays under the 16-bit duration (RFC 4733 section 2.3.5).
MAX_PRESS_MS = 8000


@dataclass(slots=True)
class _Press:
    code: int
    volume: int
    samples: int  # how long to send it
    start: int = 0  # its RTP timestamp, set when it begins
    elapsed: int = 0  # samples covered so far
    sent_upto: int = -1  # elapsed at the last packet sent
    ends_left: int = END_REPEATS
    since_end: int = 0


class RtpSender:
    """One call's outbound RTP stream."""

    def __init__(
        self,
        payload_type: int,
        *,
        ssrc: int,
        sequence: int,
        timestamp: int,
        ptime_ms: int = 20,
        event_payload_type: int | None = None,
        events: Iterable[int] = DIGITS_ALL,
        codec: str | None = None,
        frame_codec: str | None = None,
    ) -> None:
        """``codec`` is the law on the wire (by default the static one of ``payload_type``,
        RFC 3551 table 4: 8 is PCMA, else PCMU); ``frame_codec`` the leg's (by default the same).
        """
        RtpPacket(payload_type, sequence, timestamp, ssrc)  # checks the fields' ranges
        codec = _static_law(payload_type) if codec is None else codec
        self.ssrc = ssrc
        self.frame_codec = codec if frame_codec is None else frame_codec
        if self.frame_codec not in SILENCE:
            raise InvalidField(f"frames are {PCMU} or {PCMA}, not {self.frame_codec!r}")
        self.codec = codec
        self._pending = bytearray()  # audio waiting for a whole packet, in ``codec``
        self._presses: deque[_Press] = deque()
        self.configure(payload_type, ptime_ms, event_payload_type, events, codec)
        self._sequence = sequence
        self._timestamp = timestamp  # of the next frame pushed
        self._pending_ts = timestamp
        self._talkspurt = True
        self._sending = True
        self.packets_sent = 0
        self.octets_sent = 0  # payload octets, as the SR counts them (RFC 3550 6.4.1)

    @classmethod
    def start(
        cls,
        payload_type: int,
        randbits: Callable[[int], int],
        *,
        ptime_ms: int = 20,
        event_payload_type: int | None = None,
        events: Iterable[int] = DIGITS_ALL,
        codec: str | None = None,
    ) -> RtpSender:
        """A sender with a random SSRC, sequence and timestamp (``secrets.randbits``)."""
        return cls(
            payload_type,
            ssrc=randbits(32),
            sequence=randbits(16),
            timestamp=randbits(32),
            ptime_ms=ptime_ms,
            event_payload_type=event_payload_type,
            events=events,
            codec=codec,
        )

    def configure(
        self,
        payload_type: int,
        ptime_ms: int,
        event_payload_type: int | None = None,
        events: Iterable[int] = DIGITS_ALL,
        codec: str | None = None,
    ) -> None:
        """Set what a (re-)negotiation agreed; the SSRC, sequence and timestamp go on.

        A re-INVITE may leave only the other G.711 law: the leg's frames
        are then translated to ``codec`` on the way out.
        """
        if ptime_ms not in PTIMES_MS:
            raise InvalidField(f"ptime must be one of {PTIMES_MS} ms, not {ptime_ms}")
        codec = _static_law(payload_type) if codec is None else codec
        if codec not in SILENCE:
            raise InvalidField(f"RTP carries {PCMU} or {PCMA} here, not {codec!r}")
        RtpPacket(payload_type, 0, 0, 0)
        if codec != self.codec:  # audio waiting for a packet goes out in the new law
            self._pending[:] = transcode(bytes(self._pending), self.codec, codec)
        self.codec = codec
        self.payload_type = payload_type
        self.event_payload_type = event_payload_type
        self.events = frozenset(events)
        if event_payload_type is None:
            self._presses.clear()  # the peer takes no events any more: presses not sent yet go
        self.ptime_ms = ptime_ms
        self.packet_samples = CLOCK_RATE * ptime_ms // 1000
        # A frame is a packet as it stands: push()'s fast path.
        self._plain = codec == self.frame_codec and self.packet_samples == FRAME_SAMPLES

    @property
    def timestamp(self) -> int:
        """The RTP timestamp of the next frame: "now" for a sender report taken at a tick."""
        return self._timestamp

    @property
    def sending(self) -> bool:
        return self._sending

    @sending.setter
    def sending(self, value: bool) -> None:
        """False while the peer holds us; the next packet after that carries the marker."""
        if not value:
            self._pending.clear()
            self._presses.clear()
            self._talkspurt = True
        self._sending = value

    def send_digit(self, digit: str, duration_ms: int = 100, volume: int = DEFAULT_VOLUME) -> bool:
        """Queue a key press; False if the peer takes no telephone-events (or not this one).

        Then the driver may play the tone in-band instead (``media.dtmf.generate``).
        """
        code = event_code(digit)
        if self.event_payload_type is None or code not in self.events or not self._sending:
            return False
        duration_ms = min(max(duration_ms, 1), MAX_PRESS_MS)
        frames = -(-duration_ms * CLOCK_RATE // 1000 // FRAME_SAMPLES)  # whole ticks, rounded up
        samples = frames * FRAME_SAMPLES
        self._presses.append(_Press(code, TelephoneEvent(code, volume=volume).volume, samples))
        return True

    def push(self, frame: bytes) -> list[bytes]:
        """Take this tick's 20 ms frame; return the datagrams to send now (often one)."""
        if len(frame) != FRAME_SAMPLES:
            raise InvalidField(f"a G.711 frame is {FRAME_SAMPLES} octets, not {len(frame)}")
        ts = self._timestamp
        self._timestamp = (ts + FRAME_SAMPLES) % TIMESTAMP_MOD
        if not self._sending:
            return []
        if not self._presses and not self._pending and self._plain:
            # The common tick: one 20 ms frame in the peer's law is one packet, as the
            # general path below makes it, without the pending buffer's copies.
            self._pending_ts = (ts + FRAME_SAMPLES) % TIMESTAMP_MOD
            packet = self._packet(self.payload_type, ts, frame, self._talkspurt)
            self._talkspurt = False
            return [packet]
        out: list[bytes] = []
        if self._presses and self._press_tick(ts, out):
            return out
        if not self._pending:
            self._pending_ts = ts
        self._pending += transcode(frame, self.frame_codec, self.codec)
        size = self.packet_samples
        while len(self._pending) >= size:
            payload = bytes(self._pending[:size])
            del self._pending[:size]
            out.append(self._packet(self.payload_type, self._pending_ts, payload, self._talkspurt))
            self._talkspurt = False
            self._pending_ts = (self._pending_ts + size) % TIMESTAMP_MOD
        return out

    def flush(self) -> list[bytes]:
        """Send the audio waiting for a whole packet as a short one (the call ends, or holds)."""
        if not self._pending or not self._sending:
            return []
        payload = bytes(self._pending)
        self._pending.clear()
        packet = self._packet(self.payload_type, self._pending_ts, payload, self._talkspurt)
        self._talkspurt = False
        return [packet]

    def _press_tick(self, ts: int, out: list[bytes]) -> bool:
        """Send the key press's packets for this tick; True if it replaces the audio."""
        press = self._presses[0]
        pt = self.event_payload_type
        if pt is None:  # configure() empties the queue before this can happen
            raise InvalidField("a key press queued for a peer that takes no telephone-events")
        if press.elapsed >= press.samples:
            # Over: the final packet is repeated at the update interval while audio resumes.
            press.since_end += FRAME_SAMPLES
            if press.since_end >= self.packet_samples:
                press.since_end = 0
                out.append(self._event_packet(pt, press, end=True))
                press.ends_left -= 1
                if press.ends_left == 0:
                    self._presses.popleft()
            return False
        if press.sent_upto < 0:
            # It begins where the audio not yet sent began; that audio gives way to it.
            press.start = self._pending_ts if self._pending else ts
            press.elapsed = timestamp_delta(ts, press.start)
            self._pending.clear()
        press.elapsed += FRAME_SAMPLES
        first = press.sent_upto < 0
        if press.elapsed >= press.samples:
            out.append(self._event_packet(pt, press, end=True, marker=first))
            press.ends_left -= 1
            press.sent_upto = press.elapsed
        elif first or press.elapsed - press.sent_upto >= self.packet_samples:
            out.append(self._event_packet(pt, press, end=False, marker=first))
            press.sent_upto = press.elapsed
        return True

    def _event_packet(self, pt: int, press: _Press, *, end: bool, marker: bool = False) -> bytes:
        event = TelephoneEvent(press.code, end, press.volume, press.elapsed)
        return self._packet(pt, press.start, event.to_bytes(), marker)

    def _packet(self, pt: int, ts: int, payload: bytes, marker: bool) -> bytes:
        # What RtpPacket(...).to_bytes() gives for a packet with no CSRCs or padding
        # (a test holds the two equal), without an object per packet: the sender's
        # fields are in range by construction.
        header = pack_header(pt | (0x80 if marker else 0), self._sequence, ts, self.ssrc)
        self._sequence = (self._sequence + 1) % SEQUENCE_MOD
        self.packets_sent += 1
        self.octets_sent += len(payload)
        return header + payload


def _static_law(payload_type: int) -> str:
    return PCMA if payload_type == 8 else PCMU
