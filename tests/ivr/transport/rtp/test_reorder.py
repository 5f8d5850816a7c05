"""The reorder buffer: order restored within the window, gaps given up, copies dropped."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.transport.rtp.errors import InvalidField
from ivr.transport.rtp.reorder import ReorderBuffer


def push_all(buffer: ReorderBuffer[int], numbers: list[int], at: float = 0.0) -> list[int]:
    out: list[int] = []
    for n in numbers:
        out += buffer.push(n, n, at)
    return out


def test_in_order_packets_go_out_at_once() -> None:
    buffer: ReorderBuffer[int] = ReorderBuffer(window=4)
    assert [buffer.push(n, n, 0.0) for n in (10, 11, 12)] == [[10], [11], [12]]
    assert buffer.held == 0


def test_a_swap_is_undone() -> None:
    buffer: ReorderBuffer[int] = ReorderBuffer(window=4)
    assert buffer.push(1, 1, 0.0) == [1]
    assert buffer.push(3, 3, 0.0) == []
    assert buffer.push(2, 2, 0.0) == [2, 3]
    assert buffer.skipped == 0


def test_duplicates_and_late_packets_are_dropped_and_counted_apart() -> None:
    buffer: ReorderBuffer[int] = ReorderBuffer(window=2)
    assert push_all(buffer, [1, 3, 3]) == [1]  # the second 3 is a copy of one held
    assert buffer.duplicates == 1
    assert push_all(buffer, [4]) == [3, 4]  # 2 given up: 4 is the window past it
    assert buffer.skipped == 1
    assert push_all(buffer, [2]) == []  # too late
    assert push_all(buffer, [4]) == []  # already played
    assert (buffer.late, buffer.duplicates) == (1, 2)


def test_a_gap_is_given_up_after_the_hold_time() -> None:
    buffer: ReorderBuffer[int] = ReorderBuffer(window=8)
    push_all(buffer, [1])
    assert buffer.push(3, 3, 1.00) == []
    assert buffer.push(4, 4, 1.02) == []
    assert buffer.expire(1.05, max_hold_s=0.06) == []
    assert buffer.expire(1.06, max_hold_s=0.06) == [3, 4]
    assert buffer.skipped == 1


def test_flush_releases_everything_in_order_and_forgets_the_position() -> None:
    buffer: ReorderBuffer[int] = ReorderBuffer(window=8)
    push_all(buffer, [1, 5, 3])
    assert buffer.flush() == [3, 5]
    assert buffer.push(100, 100, 0.0) == [100]  # a new source starts anywhere


def test_a_window_of_zero_is_refused() -> None:
    with pytest.raises(InvalidField):
        ReorderBuffer(window=0)


@st.composite
def shuffled_in_blocks(draw: st.DrawFn) -> tuple[int, list[int]]:
    """A run of numbers with each block of ``window`` numbers permuted at random.

    The first packet of a stream comes first: it sets where playout starts
    (a packet older than the first one to arrive is late, however small the
    swap, because the first one is played at once).
    """
    window = draw(st.integers(1, 12))
    start = draw(st.integers(0, 1 << 20))
    count = draw(st.integers(1, 80))
    numbers = list(range(start + 1, start + 1 + count))
    arrival = [start]
    for i in range(0, count, window):
        arrival += draw(st.permutations(numbers[i : i + window]))
    return window, arrival


@given(shuffled_in_blocks())
def test_any_permutation_within_the_window_comes_out_exactly_in_order(
    case: tuple[int, list[int]],
) -> None:
    window, arrival = case
    buffer: ReorderBuffer[int] = ReorderBuffer(window=window)
    out = push_all(buffer, arrival)
    assert buffer.held <= window  # nothing waits for more than the window
    out += buffer.flush()
    assert out == sorted(arrival)
    assert (buffer.skipped, buffer.late, buffer.duplicates) == (0, 0, 0)


@given(shuffled_in_blocks(), st.data())
def test_copies_anywhere_are_dropped(case: tuple[int, list[int]], data: st.DataObject) -> None:
    window, arrival = case
    copies = data.draw(st.lists(st.sampled_from(arrival), max_size=10))
    stream = list(arrival)
    for copy in copies:
        stream.insert(data.draw(st.integers(stream.index(copy) + 1, len(stream))), copy)
    buffer: ReorderBuffer[int] = ReorderBuffer(window=window)
    out = push_all(buffer, stream) + buffer.flush()
    assert out == sorted(arrival)
    assert buffer.duplicates == len(copies)
    assert buffer.late == 0


@given(st.lists(st.integers(0, 300), min_size=1, max_size=100), st.integers(1, 10))
def test_whatever_arrives_leaves_in_increasing_order_without_repeats(
    numbers: list[int], window: int
) -> None:
    buffer: ReorderBuffer[int] = ReorderBuffer(window=window)
    out = push_all(buffer, numbers) + buffer.flush()
    assert out == sorted(set(out))
    assert set(out) <= set(numbers)
    assert len(out) + buffer.duplicates + buffer.late == len(numbers)
