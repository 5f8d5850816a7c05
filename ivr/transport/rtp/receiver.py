"""The receive path of one call: RTP datagrams in, 20 ms frames and key presses out.

The driver hands each datagram to :meth:`RtpReceiver.receive` with its
arrival time, calls :meth:`RtpReceiver.poll` once per media-clock tick, and
passes every frame it gets to ``Leg.receive_audio``, exactly as the
WebSocket transport does with a caller's binary frames. Nothing here reads
a clock or a socket. Per packet:

1. the bytes are parsed (a malformed datagram is counted and dropped:
   anyone can send a UDP packet to our port);
2. the SSRC is checked: the first one is the call's source; a different one
   must send two packets in sequence (RFC 3550 appendix A.1's probation,
   ``MIN_SEQUENTIAL``) before it replaces the old one, so one stray packet
   cannot take over the call. When it does, the old source's held packets
   are played out, the sequence state starts over and the frame grid starts
   at the new source's timestamps: the call goes on;
3. appendix A.1 counts it, A.8 times it (not telephone-events, which keep
   their event's start as timestamp, section 2.2.1 of RFC 4733, and would
   count their age as jitter);
4. the reorder buffer releases packets in sequence order, and each released
   packet goes by payload type: G.711 to the frame assembler (in the leg's
   law, transcoded if the peer sends the other one it was allowed),
   telephone-events to the digit tracker and as silence to the assembler
   (they never become audio), comfort noise (PT 13, RFC 3389) ends the
   talkspurt: what the leg plays until the next packet is silence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ivr.transport.rtp.errors import InvalidField, MalformedEvent, MalformedPacket
from ivr.transport.rtp.events import EVENT_TIMEOUT_S, DigitEvent, DigitTracker, parse_events
from ivr.transport.rtp.framing import (
    DEFAULT_MAX_FILL_SAMPLES,
    FRAME_SAMPLES,
    PCMA,
    PCMU,
    SILENCE,
    FrameAssembler,
    transcode,
)
from ivr.transport.rtp.packet import (
    FIXED_HEADER,
    HEADER_BYTES,
    RTP_VERSION,
    RtpPacket,
    parse_packet,
)
from ivr.transport.rtp.reorder import DEFAULT_MAX_HOLD_S, DEFAULT_WINDOW, ReorderBuffer
from ivr.transport.rtp.sequence import SEQUENCE_MOD, LossReport, SourceStatistics

CLOCK_RATE = 8000  # G.711's (RFC 3551 section 4.5.14), and so its telephone-events'
TELEPHONE_EVENT = "telephone-event"
COMFORT_NOISE = "cn"
KINDS = (PCMU, PCMA, TELEPHONE_EVENT, COMFORT_NOISE)
MIN_SEQUENTIAL = 2  # RFC 3550 appendix A.1: packets in sequence before a new source counts
# Polls further apart than this mean the driver's loop stalled (polls come once a
# 20 ms tick, catch-up ticks closer): what arrived meanwhile may still be unread.
STALL_S = 0.03

_Item = tuple[RtpPacket, float]
STATIC_TYPES = {PCMU: 0, PCMA: 8}  # RFC 3551 table 4
_PLAIN_SIZE = HEADER_BYTES + FRAME_SAMPLES  # a 20 ms G.711 packet with a plain header
_PLAIN_FIRST = RTP_VERSION << 6  # version 2; no padding, extension or CSRC


@dataclass(frozen=True, slots=True)
class Received:
    """What one datagram (or one poll) produced, in order."""

    frames: tuple[bytes, ...] = ()  # whole 20 ms frames for Leg.receive_audio
    digits: tuple[DigitEvent, ...] = ()


NOTHING = Received()


@dataclass(frozen=True, slots=True)
class ReceiverStatistics:
    """Counters of the stream; the RFC 3550 figures are the current source's."""

    ssrc: int | None
    sources: int  # SSRCs taken in turn (1 for an ordinary call)
    packets: int  # valid RTP packets counted by appendix A.1, every source
    expected: int  # appendix A.3, every source
    lost: int  # appendix A.3: expected - received, every source (negative: duplicates)
    fraction_lost: int  # appendix A.3, in 1/256, over the last report interval (see report())
    jitter: float  # appendix A.8, timestamp units, current source
    jitter_ms: float
    malformed: int  # datagrams that were not RTP, and malformed event payloads
    duplicates: int
    late: int  # arrived after playout had given up waiting for them
    skipped: int  # sequence numbers playout gave up waiting for
    unproven: int  # packets of a new SSRC that did not pass probation (or a wild jump)
    restarts: int  # a sender restarted its sequence numbers (appendix A.1)
    comfort_noise: int
    telephone_events: int
    unknown_payload: int  # payload types not negotiated
    frames: int
    concealed_ms: float  # silence put in place of lost audio


@dataclass(slots=True)
class _Source:
    stats: SourceStatistics
    reorder: ReorderBuffer[_Item]


@dataclass(slots=True)
class _Candidate:
    ssrc: int
    last_sequence: int
    packets: list[_Item] = field(default_factory=list)


@dataclass(slots=True)
class _Out:
    frames: list[bytes] = field(default_factory=list)
    digits: list[DigitEvent] = field(default_factory=list)

    def done(self) -> Received:
        if not self.frames and not self.digits:
            return NOTHING  # what nearly every poll gives: no new objects per tick
        return Received(tuple(self.frames), tuple(self.digits))


class RtpReceiver:
    """One call's inbound RTP: reorder, count, repacketise, pick out key presses."""

    def __init__(
        self,
        formats: Mapping[int, str],
        codec: str = PCMU,
        *,
        window: int = DEFAULT_WINDOW,
        max_delay_s: float = DEFAULT_MAX_HOLD_S,
        max_fill_samples: int = DEFAULT_MAX_FILL_SAMPLES,
    ) -> None:
        """``formats`` maps each payload type we answered to one of :data:`KINDS`."""
        if codec not in SILENCE:
            raise InvalidField(f"the leg's codec must be {PCMU} or {PCMA}, not {codec!r}")
        for pt, kind in formats.items():
            if kind not in KINDS:
                raise InvalidField(f"payload type {pt}: {kind!r} is not one of {KINDS}")
        self.codec = codec
        self.formats = dict(formats)
        self.window = window
        self.max_delay_s = max_delay_s
        self.assembler = FrameAssembler(SILENCE[codec], FRAME_SAMPLES, max_fill_samples)
        self.digits = DigitTracker(CLOCK_RATE)
        self._source: _Source | None = None
        self._candidate: _Candidate | None = None
        self._quiet = False  # comfort noise came: the next audio starts a talkspurt
        self._last_arrival_s: float | None = None
        self._last_poll_s: float | None = None
        self._listening_since_s: float | None = None
        self._flushed = True
        # Figures of the sources before the current one (appendix A.3 is per source).
        self._old = {"packets": 0, "expected": 0, "lost": 0}
        self._old_reorder = {"duplicates": 0, "late": 0, "skipped": 0}
        self._sources = 0
        self._restarts = 0
        self._fraction_lost = 0
        self._counts = dict.fromkeys(("malformed", "unproven", "cn", "events", "unknown"), 0)

    @property
    def formats(self) -> dict[int, str]:
        """Each payload type we answered, as one of :data:`KINDS`."""
        return self._formats

    @formats.setter
    def formats(self, formats: Mapping[int, str]) -> None:
        self._formats = dict(formats)
        # The payload type the fast path takes: the leg's law, the static number first.
        ours = sorted(pt for pt, kind in self._formats.items() if kind == self.codec)
        static = STATIC_TYPES[self.codec]
        self._plain_pt = static if static in ours else (ours[0] if ours else -1)

    @property
    def ssrc(self) -> int | None:
        return None if self._source is None else self._source.stats.ssrc

    @property
    def last_arrival_s(self) -> float | None:
        """When the last RTP packet came (any SSRC): the driver's media timeout reads it."""
        return self._last_arrival_s

    def receive(self, datagram: bytes, arrival_s: float) -> Received:
        """Take one datagram from the RTP port; a malformed one is counted and dropped."""
        frame = self._next_frame(datagram, arrival_s)
        if frame is not None:
            return Received((frame,))
        try:
            packet = parse_packet(datagram)
        except MalformedPacket:
            self._counts["malformed"] += 1
            return NOTHING
        return self.receive_packet(packet, arrival_s)

    def _next_frame(self, datagram: bytes, arrival_s: float) -> bytes | None:
        """The common packet, taken without parsing it into an object; else None, untouched.

        That is: a plain header (no CSRC, extension or padding, no marker), the
        leg's own law in 20 ms, the current source, the next sequence number
        with nothing held, and the next frame's timestamp. The general path
        (:meth:`receive_packet`) gives the same frame and the same figures
        for it (a test holds the two equal); this one makes no packet,
        list or dataclass, which at 300 calls is a tenth of the server.
        """
        source = self._source
        if (
            source is None
            or len(datagram) != _PLAIN_SIZE
            or datagram[0] != _PLAIN_FIRST
            or datagram[1] != self._plain_pt
            or self._quiet
        ):
            return None
        _, _, seq, timestamp, ssrc = FIXED_HEADER.unpack_from(datagram)
        stats = source.stats
        if ssrc != stats.ssrc or seq != (stats.max_seq + 1) % SEQUENCE_MOD:
            return None
        reorder = source.reorder
        extended = stats.cycles + stats.max_seq + 1  # what next_in_order will give
        if not reorder.is_next(extended) or not self.assembler.is_next(timestamp, FRAME_SAMPLES):
            return None
        stats.next_in_order(seq)
        stats.timed(timestamp, arrival_s)
        reorder.take_next(extended)
        self.assembler.take_next()
        self._last_arrival_s = arrival_s
        self._flushed = False
        return datagram[HEADER_BYTES:]

    def receive_packet(self, packet: RtpPacket, arrival_s: float) -> Received:
        out = _Out()
        self._last_arrival_s = arrival_s
        self._flushed = False
        source = self._source
        if source is None:
            self._start(packet, arrival_s, out)
        elif packet.ssrc == source.stats.ssrc:
            self._accept(source, packet, arrival_s, out)
        else:
            self._probation(packet, arrival_s, out)
        return out.done()

    @property
    def listening_since_s(self) -> float | None:
        """When the driver's polls last resumed after a stall (None: no stall seen).

        Silence is measured only from then: while the loop was stalled the
        packets that came are still in the socket, not missing (the first
        tick after a stall runs before the loop reads its sockets)."""
        return self._listening_since_s

    def poll(self, now_s: float) -> Received:
        """Call once per tick: give up gaps held too long, end stale presses and talkspurts.

        Every wait here (a gap held, a press without its end, a part-built
        frame) counts only time the driver was listening: after a stall
        (:data:`STALL_S` between polls) they wait as long again, so packets
        still unread in the socket are not given up for lost. Without this a
        stalled loop's first tick flushed a 30 ms packet's part-built frame
        as silence and the next packet's first samples were dropped: a frame
        altered in place in the recording."""
        out = _Out()
        previous, self._last_poll_s = self._last_poll_s, now_s
        if previous is not None and now_s - previous > STALL_S:
            self._listening_since_s = now_s
        since = self._listening_since_s
        heard_s = now_s - since if since is not None else float("inf")  # time spent listening
        if self._source is not None and heard_s >= self.max_delay_s:
            self._play(self._source.reorder.expire(now_s, self.max_delay_s), out)
        if heard_s >= EVENT_TIMEOUT_S:
            out.digits += self.digits.expire(now_s)
        last = self._last_arrival_s
        if (
            not self._flushed
            and last is not None
            and min(now_s - last, heard_s) >= self.max_delay_s
        ):
            # Nothing came for a while: hand out the part-built frame's audio.
            out.frames += self.assembler.flush()
            self._flushed = True
        return out.done()

    def report(self) -> tuple[int, LossReport] | None:
        """The current source and appendix A.3's report numbers (starts a new interval)."""
        if self._source is None:
            return None
        loss = self._source.stats.report()
        self._fraction_lost = loss.fraction_lost
        return self._source.stats.ssrc, loss

    def statistics(self) -> ReceiverStatistics:
        stats = None if self._source is None else self._source.stats
        reorder = None if self._source is None else self._source.reorder
        a = self.assembler
        return ReceiverStatistics(
            ssrc=None if stats is None else stats.ssrc,
            sources=self._sources,
            packets=self._old["packets"] + (0 if stats is None else stats.received),
            expected=self._old["expected"] + (0 if stats is None else stats.expected),
            lost=self._old["lost"] + (0 if stats is None else stats.lost),
            fraction_lost=self._fraction_lost,
            jitter=0.0 if stats is None else stats.jitter,
            jitter_ms=0.0 if stats is None else stats.jitter_ms,
            malformed=self._counts["malformed"],
            duplicates=self._old_reorder["duplicates"] + (reorder.duplicates if reorder else 0),
            late=self._old_reorder["late"] + (reorder.late if reorder else 0),
            skipped=self._old_reorder["skipped"] + (reorder.skipped if reorder else 0),
            unproven=self._counts["unproven"],
            restarts=self._restarts + (0 if stats is None else stats.restarts),
            comfort_noise=self._counts["cn"],
            telephone_events=self._counts["events"],
            unknown_payload=self._counts["unknown"],
            frames=a.frames,
            concealed_ms=a.concealed_samples * 1000 / CLOCK_RATE,
        )

    # ------------------------------------------------------------ sources

    def _start(self, packet: RtpPacket, arrival_s: float, out: _Out) -> None:
        """A source's first packet: counted by the constructor (see ``sequence``)."""
        stats = SourceStatistics(packet.ssrc, packet.sequence, CLOCK_RATE)
        source = _Source(stats, ReorderBuffer(self.window))
        self._source = source
        self._sources += 1
        self._timed(stats, packet, arrival_s)
        self._play(source.reorder.push(packet.sequence, (packet, arrival_s), arrival_s), out)

    def _accept(self, source: _Source, packet: RtpPacket, arrival_s: float, out: _Out) -> None:
        sequenced = source.stats.update(packet.sequence)
        if sequenced is None:
            self._counts["unproven"] += 1
            return
        if sequenced.restarted:
            # Appendix A.1: the sender started over. Play what was held, start again.
            self._play(source.reorder.flush(), out)
            out.frames += self.assembler.reset()
        self._timed(source.stats, packet, arrival_s)
        self._play(source.reorder.push(sequenced.extended, (packet, arrival_s), arrival_s), out)

    def _probation(self, packet: RtpPacket, arrival_s: float, out: _Out) -> None:
        """A packet of another SSRC: taken once ``MIN_SEQUENTIAL`` arrive in sequence."""
        candidate = self._candidate
        if (
            candidate is None
            or candidate.ssrc != packet.ssrc
            or packet.sequence != (candidate.last_sequence + 1) % 65536
        ):
            if candidate is not None:
                self._counts["unproven"] += len(candidate.packets)
            self._candidate = _Candidate(packet.ssrc, packet.sequence, [(packet, arrival_s)])
            return
        candidate.packets.append((packet, arrival_s))
        candidate.last_sequence = packet.sequence
        if len(candidate.packets) < MIN_SEQUENTIAL:
            return
        self._candidate = None
        self._retire(out)
        first, first_arrival = candidate.packets[0]
        self._start(first, first_arrival, out)
        assert self._source is not None
        for held, held_arrival in candidate.packets[1:]:
            self._accept(self._source, held, held_arrival, out)

    def _retire(self, out: _Out) -> None:
        """The current source is replaced: play out what it left, keep its figures."""
        source = self._source
        assert source is not None
        self._play(source.reorder.flush(), out)
        out.frames += self.assembler.reset()
        self._old["packets"] += source.stats.received
        self._old["expected"] += source.stats.expected
        self._old["lost"] += source.stats.lost
        for name in self._old_reorder:
            self._old_reorder[name] += getattr(source.reorder, name)
        self._restarts += source.stats.restarts

    def _timed(self, stats: SourceStatistics, packet: RtpPacket, arrival_s: float) -> None:
        if self.formats.get(packet.payload_type) != TELEPHONE_EVENT:
            stats.timed(packet.timestamp, arrival_s)

    # ------------------------------------------------------------- playout

    def _play(self, items: list[_Item], out: _Out) -> None:
        for packet, arrival_s in items:
            kind = self.formats.get(packet.payload_type)
            if kind in (PCMU, PCMA):
                restart = packet.marker or self._quiet
                self._quiet = False
                payload = transcode(packet.payload, kind, self.codec)
                out.frames += self.assembler.audio(packet.timestamp, payload, restart=restart)
            elif kind == TELEPHONE_EVENT:
                self._event(packet, arrival_s, out)
            elif kind == COMFORT_NOISE:
                # RFC 3389 section 4: silence begins at this packet's timestamp.
                self._counts["cn"] += 1
                self._quiet = True
                out.frames += self.assembler.flush()
            else:
                self._counts["unknown"] += 1

    def _event(self, packet: RtpPacket, arrival_s: float, out: _Out) -> None:
        self._counts["events"] += 1
        try:
            events = parse_events(packet.payload)
        except MalformedEvent:
            self._counts["malformed"] += 1
            return
        out.digits += self.digits.observe(packet.timestamp, events, arrival_s)
        span = sum(e.duration for e in events)
        self._quiet = False
        out.frames += self.assembler.silent(packet.timestamp, span, restart=packet.marker)
