"""Metrics arithmetic on known inputs: nearest-rank percentiles and the histogram."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.load.metrics import BINS, UPPER_EDGES, Histogram, bin_of, percentile, summarize


def test_nearest_rank_percentiles_of_1_to_100() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # order does not matter
    s = summarize(values)
    assert (s.count, s.mean, s.p50, s.p90, s.p99, s.p999, s.max) == (
        100,
        50.5,
        50,
        90,
        99,
        100,
        100,
    )


def test_nearest_rank_on_small_samples() -> None:
    assert percentile([7.0], 50) == 7.0
    assert percentile([1.0, 2.0], 50) == 1.0  # rank ceil(0.5 * 2) = 1
    assert percentile([1.0, 2.0, 3.0, 4.0], 75) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 76) == 4.0
    assert summarize([3.0, 1.0, 2.0]).p99 == 3.0
    # 1000 values: p99.9 is the 999th, not the largest.
    s = summarize([float(v) for v in range(1, 1001)])
    assert (s.p99, s.p999, s.max) == (990, 999, 1000)


def test_no_data_is_nan_and_null_in_json() -> None:
    s = summarize([])
    assert s.count == 0
    assert math.isnan(s.p99)
    assert s.as_dict() == {k: (0 if k == "count" else None) for k in s.as_dict()}
    assert math.isnan(percentile([], 50))
    assert math.isnan(Histogram().percentile(99))


def test_bins_are_log_linear() -> None:
    assert [
        bin_of(v)
        for v in (-1.0, 0.0, 0.05, 0.1, 9.99, 10.0, 99.5, 100.0, 999.0, 1000.0, 9999.0, 1e6)
    ] == [0, 0, 0, 1, 99, 100, 189, 190, 279, 280, 369, BINS - 1]
    assert UPPER_EDGES[0] == 0.1
    assert UPPER_EDGES[99] == 10.0
    assert UPPER_EDGES[100] == 11.0
    assert UPPER_EDGES[189] == 100.0
    assert UPPER_EDGES[279] == 1000.0
    assert UPPER_EDGES[369] == 10000.0
    assert math.isinf(UPPER_EDGES[-1])
    assert len(UPPER_EDGES) == BINS


def test_histogram_percentiles_are_bin_upper_edges_capped_at_the_max() -> None:
    h = Histogram.of([0.05] * 98 + [12.3, 45.6])
    assert h.n == 100
    assert h.max == 45.6
    assert h.percentile(50) == 0.1  # the upper edge of the bin of 0.05
    assert h.percentile(99) == 13.0  # 12.3 lies in the 1 ms bin [12, 13)
    assert h.percentile(99.9) == 45.6  # [45, 46) is capped at the exact max
    assert h.summary().mean == pytest.approx((0.05 * 98 + 12.3 + 45.6) / 100)
    assert h.count_over(12.0) == 2
    assert h.count_over(13.0) == 1
    assert h.count_over(100.0) == 0


def test_histogram_never_understates_a_percentile() -> None:
    rng = random.Random(4)
    values = [rng.expovariate(0.5) for _ in range(5000)]
    h = Histogram.of(values)
    for p in (50.0, 90.0, 99.0, 99.9):
        exact = percentile(values, p)
        assert exact <= h.percentile(p) <= max(exact * 1.1, exact + 0.1)


def test_histograms_merge_and_round_trip_through_json() -> None:
    a, b = Histogram.of([1.0, 2.0, 3.0]), Histogram.of([50.0, 0.2])
    a.merge(b)
    assert (a.n, a.max, a.total) == (5, 50.0, 56.2)
    back = Histogram.from_dict(a.to_dict())
    assert back.counts == a.counts
    assert (back.n, back.max, back.total) == (a.n, a.max, a.total)
    assert a.to_dict()["bins"] == {"2": 1, "10": 1, "20": 1, "30": 1, "140": 1}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(allow_nan=False),
            st.floats(0, 20),
            st.sampled_from([0.0, -0.0, 0.1, 0.3, 9.999999999999998, 10.0, 99.99999999999999]),
            st.sampled_from([100.0, 1000.0, 9999.999999999998, 10000.0, math.inf, -math.inf]),
            st.sampled_from([-1e308, 1e308, 5e-324]),
        ),
        max_size=300,
    ),
    st.integers(0, 300),
)
def test_add_all_is_add_for_each_value(values: list[float], split: int) -> None:
    one_by_one, batched = Histogram(), Histogram()
    for v in values:
        one_by_one.add(v)
    batched.add_all(values[:split])
    batched.add_all(values[split:])
    assert batched.counts == one_by_one.counts
    assert (batched.n, batched.max) == (one_by_one.n, one_by_one.max)
    assert batched.total == one_by_one.total or (
        math.isnan(batched.total) and math.isnan(one_by_one.total)
    )
