"""Sequence numbers, loss and jitter of one RTP source (RFC 3550 appendix A.1, A.3, A.8).

Sequence numbers are 16 bits and wrap every 65,536 packets (22 minutes at
20 ms); timestamps are 32 bits and wrap too. Everything here compares them
modulo their size, as appendix A.1 does, and extends a sequence number with
a count of wraps ("cycles") so that a receiver can order packets and count
losses across a wrap.

:class:`SourceStatistics` follows appendix A.1's ``update_seq`` line for
line, with one deliberate difference: the first packet is counted at once
instead of after a probation of ``MIN_SEQUENTIAL`` packets. The stream was
negotiated in SDP, so there is no stray source to rule out, and A.1's own
shortcut for that case (``max_seq = seq - 1``) counts a false wrap when the
first sequence number is 0. A new SSRC in the middle of a call does get its
probation, one level up (:mod:`ivr.transport.rtp.receiver`).
"""

from __future__ import annotations

from dataclasses import dataclass

SEQUENCE_MOD = 1 << 16
TIMESTAMP_MOD = 1 << 32
# Appendix A.1: a jump forward of fewer than MAX_DROPOUT is a gap (lost
# packets); one back of at most MAX_MISORDER is a late or duplicate packet;
# anything else is a restart, believed after two sequential packets.
MAX_DROPOUT = 3000
MAX_MISORDER = 100
# Appendix A.3: the cumulative loss field of a report block is 24-bit signed.
MAX_CUMULATIVE_LOST = 0x7FFFFF
MIN_CUMULATIVE_LOST = -0x800000
JITTER_GAIN = 1 / 16  # appendix A.8 / section 6.4.1: the estimator's gain


def sequence_delta(a: int, b: int) -> int:
    """``a - b`` for 16-bit sequence numbers, in -32768..32767 (the shorter way round)."""
    return (a - b + 0x8000) % SEQUENCE_MOD - 0x8000


def timestamp_delta(a: int, b: int) -> int:
    """``a - b`` for 32-bit RTP timestamps, in -2**31..2**31-1."""
    return (a - b + 0x80000000) % TIMESTAMP_MOD - 0x80000000


def extend_sequence(sequence: int, near: int) -> int:
    """The extended sequence number ending in ``sequence`` that is nearest to ``near``.

    ``near`` is an extended number already known (the highest so far); a
    packet a little before it in the previous cycle, or a little after it in
    the next, lands on the right side of the wrap.
    """
    return near + sequence_delta(sequence, near % SEQUENCE_MOD)


@dataclass(frozen=True, slots=True)
class Sequenced:
    """The outcome of one packet's sequence number: where it falls, and if the count restarted."""

    extended: int
    restarted: bool = False


@dataclass(frozen=True, slots=True)
class LossReport:
    """Appendix A.3's numbers for one report interval, as a report block carries them."""

    extended_highest: int
    expected: int
    cumulative_lost: int  # clamped to the 24-bit signed field
    fraction_lost: int  # lost in the interval / expected in it, in 1/256 (8 bits)
    jitter: int  # timestamp units, the integer of appendix A.8


class SourceStatistics:
    """Appendix A.1's per-source state, with A.3's loss and A.8's interarrival jitter."""

    __slots__ = (
        "_arrival",
        "_bad_seq",
        "_rtp_ts",
        "base_seq",
        "clock_rate",
        "cycles",
        "expected_prior",
        "jitter",
        "max_seq",
        "received",
        "received_prior",
        "restarts",
        "ssrc",
    )

    def __init__(self, ssrc: int, first_sequence: int, clock_rate: int) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.restarts = 0
        self.jitter = 0.0  # timestamp units, the floating-point form of appendix A.8
        self._arrival: float | None = None  # arrival of the last packet timed, in seconds
        self._rtp_ts = 0
        self._init_seq(first_sequence)
        self.received = 1

    def _init_seq(self, seq: int) -> None:
        """Appendix A.1 ``init_seq``."""
        self.base_seq = seq
        self.max_seq = seq
        self._bad_seq = SEQUENCE_MOD + 1  # so that seq == bad_seq is false
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0

    @property
    def extended_max(self) -> int:
        """The highest extended sequence number received (appendix A.3)."""
        return self.cycles + self.max_seq

    def update(self, seq: int) -> Sequenced | None:
        """Appendix A.1 ``update_seq``: count the packet, or None to drop it.

        None is A.1's "return 0": the first packet after a very large jump,
        held as suspect until the next one confirms that the sender started
        over (then the count restarts, ``restarted`` is true).
        """
        udelta = (seq - self.max_seq) % SEQUENCE_MOD
        restarted = False
        if udelta < MAX_DROPOUT:
            # In order, with a permissible gap.
            if seq < self.max_seq:
                self.cycles += SEQUENCE_MOD  # the sequence number wrapped
            self.max_seq = seq
        elif udelta <= SEQUENCE_MOD - MAX_MISORDER:
            # A very large jump: two sequential packets mean the sender restarted.
            if seq != self._bad_seq:
                self._bad_seq = (seq + 1) % SEQUENCE_MOD
                return None
            self._init_seq(seq)
            self.restarts += 1
            restarted = True
        # else: a duplicate or reordered packet, counted as received (A.3 allows
        # the loss to go negative for duplicates).
        self.received += 1
        return Sequenced(extend_sequence(seq, self.extended_max), restarted)

    def next_in_order(self, seq: int) -> int | None:
        """Count ``seq`` if it is the one after the highest so far; its extended number.

        :meth:`update`'s common case (a gap of one) without the
        :class:`Sequenced` it returns; None: nothing counted, use :meth:`update`.
        """
        if seq != (self.max_seq + 1) % SEQUENCE_MOD:
            return None
        if seq == 0:
            self.cycles += SEQUENCE_MOD  # the sequence number wrapped
        self.max_seq = seq
        self.received += 1
        return self.cycles + seq

    def timed(self, rtp_timestamp: int, arrival_s: float) -> None:
        """Appendix A.8: update the interarrival jitter with one packet's transit time.

        ``D(i-1, i) = (R_i - R_{i-1}) - (S_i - S_{i-1})`` in timestamp units,
        and ``J += (|D| - J) / 16``. Differences of timestamps go through
        :func:`timestamp_delta`, so a timestamp wrap is not a jump.
        """
        if self._arrival is not None:
            arrived = (arrival_s - self._arrival) * self.clock_rate
            d = arrived - timestamp_delta(rtp_timestamp, self._rtp_ts)
            self.jitter += JITTER_GAIN * (abs(d) - self.jitter)
        self._arrival = arrival_s
        self._rtp_ts = rtp_timestamp

    @property
    def expected(self) -> int:
        """Packets expected since the first (appendix A.3)."""
        return self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Packets expected less packets received; negative when duplicates outnumber losses."""
        return self.expected - self.received

    @property
    def jitter_ms(self) -> float:
        return self.jitter * 1000 / self.clock_rate

    def report(self) -> LossReport:
        """Appendix A.3's report block numbers; starts the next report interval.

        The fraction lost is over the interval since the previous call, so
        call this once per RTCP report (every ``REPORT_INTERVAL_S``).
        """
        expected = self.expected
        expected_interval = expected - self.expected_prior
        self.expected_prior = expected
        received_interval = self.received - self.received_prior
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            fraction = 0
        else:
            fraction = (lost_interval << 8) // expected_interval
        cumulative = min(max(self.lost, MIN_CUMULATIVE_LOST), MAX_CUMULATIVE_LOST)
        return LossReport(
            extended_highest=self.extended_max % TIMESTAMP_MOD,
            expected=expected,
            cumulative_lost=cumulative,
            fraction_lost=min(fraction, 255),
            jitter=int(self.jitter),
        )
