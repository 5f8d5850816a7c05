"""Sequence arithmetic, loss and jitter (RFC 3550 appendix A.1, A.3, A.8)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.transport.rtp.sequence import (
    MAX_DROPOUT,
    SourceStatistics,
    extend_sequence,
    sequence_delta,
    timestamp_delta,
)


@pytest.mark.parametrize(
    ("a", "b", "delta"),
    [(5, 3, 2), (3, 5, -2), (0, 65535, 1), (65535, 0, -1), (32767, 0, 32767), (32768, 0, -32768)],
)
def test_sequence_delta_goes_the_short_way_round(a: int, b: int, delta: int) -> None:
    assert sequence_delta(a, b) == delta


def test_timestamp_delta_wraps_at_32_bits() -> None:
    assert timestamp_delta(80, (1 << 32) - 80) == 160
    assert timestamp_delta((1 << 32) - 80, 80) == -160


def test_extend_sequence_lands_on_the_right_side_of_a_wrap() -> None:
    assert extend_sequence(2, 65534) == 65538  # just after the wrap
    assert extend_sequence(65534, 65538) == 65534  # late, from the previous cycle
    assert extend_sequence(7, 131072 + 5) == 131072 + 7


@given(st.integers(0, 1 << 40), st.integers(-30000, 30000))
def test_extend_sequence_inverts_the_16_bit_cut(near: int, offset: int) -> None:
    target = near + offset
    assert extend_sequence(target % 65536, near) == target


def feed(stats: SourceStatistics, seqs: list[int]) -> list[int | None]:
    out: list[int | None] = []
    for seq in seqs:
        result = stats.update(seq)
        out.append(None if result is None else result.extended)
    return out


def test_a_first_sequence_number_of_zero_is_not_a_wrap() -> None:
    # Appendix A.1's "max_seq = seq - 1" shortcut would count a cycle here.
    stats = SourceStatistics(ssrc=1, first_sequence=0, clock_rate=8000)
    assert feed(stats, [1, 2]) == [1, 2]
    assert stats.cycles == 0
    assert stats.expected == 3
    assert stats.lost == 0


def test_the_count_goes_on_across_a_sequence_wrap() -> None:
    stats = SourceStatistics(ssrc=1, first_sequence=65530, clock_rate=8000)
    extended = feed(stats, [(65531 + i) % 65536 for i in range(20)])
    assert extended == list(range(65531, 65551))
    assert stats.cycles == 65536
    assert stats.expected == 21
    assert stats.received == 21
    # A late packet from before the wrap keeps its place in the old cycle.
    assert feed(stats, [65533]) == [65533]
    assert stats.extended_max == 65550


def test_a_very_large_jump_is_believed_after_two_sequential_packets() -> None:
    stats = SourceStatistics(ssrc=1, first_sequence=100, clock_rate=8000)
    feed(stats, [101, 102])
    jump = 102 + MAX_DROPOUT + 10
    assert stats.update(jump) is None  # suspect: dropped, not counted
    assert stats.received == 3
    second = stats.update(jump + 1)
    assert second is not None
    assert second.restarted
    assert second.extended == jump + 1
    assert stats.restarts == 1
    assert stats.expected == 1  # the count starts over at the new number
    assert stats.received == 1


def test_a_jump_that_is_not_confirmed_stays_dropped() -> None:
    stats = SourceStatistics(ssrc=1, first_sequence=100, clock_rate=8000)
    assert stats.update(20000) is None
    assert feed(stats, [101]) == [101]
    assert stats.update(30000) is None
    assert stats.restarts == 0


def test_loss_and_fraction_lost_follow_appendix_a3_on_a_scripted_pattern() -> None:
    # 100 packets numbered 1000..1099: 1010 and 1020-1022 are lost, 1030 is
    # received twice, and 1090 is lost. First report after 1049, second after 1099.
    lost = {1010, 1020, 1021, 1022, 1090}
    stats = SourceStatistics(ssrc=7, first_sequence=1000, clock_rate=8000)
    for seq in range(1001, 1050):
        if seq not in lost:
            stats.update(seq)
        if seq == 1030:
            stats.update(seq)
    first = stats.report()
    # Appendix A.3: expected = extended_max - base_seq + 1; lost = expected - received;
    # fraction = (lost_interval << 8) / expected_interval.
    assert first.expected == 50
    assert stats.received == 50 - 4 + 1
    assert first.cumulative_lost == 3
    assert first.fraction_lost == (3 << 8) // 50
    for seq in range(1050, 1100):
        if seq not in lost:
            stats.update(seq)
    second = stats.report()
    assert second.expected == 100
    assert second.cumulative_lost == 4
    assert second.fraction_lost == (1 << 8) // 50  # one lost of the 50 expected in the interval
    assert second.extended_highest == 1099
    third = stats.report()  # nothing since: nothing lost in the interval
    assert third.fraction_lost == 0


def test_duplicates_make_the_cumulative_loss_negative_but_never_the_fraction() -> None:
    stats = SourceStatistics(ssrc=7, first_sequence=0, clock_rate=8000)
    for seq in [1, 2, 2, 2]:
        stats.update(seq)
    report = stats.report()
    assert report.cumulative_lost == -2
    assert report.fraction_lost == 0


def test_jitter_is_zero_for_a_constant_transit_time_even_across_a_timestamp_wrap() -> None:
    stats = SourceStatistics(ssrc=7, first_sequence=0, clock_rate=8000)
    start_ts = (1 << 32) - 800
    for i in range(20):
        stats.timed((start_ts + 160 * i) % (1 << 32), 10.0 + 0.02 * i + 0.035)
    assert stats.jitter == pytest.approx(0.0, abs=1e-6)


def test_jitter_follows_appendix_a8_by_hand() -> None:
    # Packets every 20 ms (160 ticks); the second is 10 ms (80 ticks) late.
    # D(0,1) = 80 + ... : J1 = 0 + (80 - 0) / 16 = 5
    # D(1,2) = -80:       J2 = 5 + (80 - 5) / 16 = 9.6875
    # D(2,3) = 0:         J3 = 9.6875 + (0 - 9.6875) / 16 = 9.08203125
    stats = SourceStatistics(ssrc=7, first_sequence=0, clock_rate=8000)
    arrivals = [0.0, 0.03, 0.04, 0.06]
    values = []
    for i, arrival in enumerate(arrivals):
        stats.timed(160 * i, arrival)
        values.append(stats.jitter)
    assert values == pytest.approx([0.0, 5.0, 9.6875, 9.08203125])
    assert stats.jitter_ms == pytest.approx(9.08203125 / 8)
    assert stats.report().jitter == 9


def test_jitter_matches_the_formula_on_a_scripted_pattern() -> None:
    # A repeating delay pattern (ms); the expected value is computed straight
    # from section 6.4.1: J(i) = J(i-1) + (|D(i-1,i)| - J(i-1)) / 16.
    delays_ms = [5, 12, 5, 30, 5, 5, 18, 5] * 25
    stats = SourceStatistics(ssrc=7, first_sequence=0, clock_rate=8000)
    expected = 0.0
    for i, delay in enumerate(delays_ms):
        stats.timed(160 * i, 0.02 * i + delay / 1000)
        if i:
            d = (delay - delays_ms[i - 1]) * 8  # ms to 8 kHz ticks
            expected += (abs(d) - expected) / 16
    assert stats.jitter == pytest.approx(expected)
    assert 40 < stats.jitter < 120  # a few ms of jitter, not zero, not a wrap
