"""Metrics of a load run: exact percentiles of samples, and mergeable histograms.

Per-call figures with one value per call or per digit (set-up, DTMF response,
prompt start) are kept as samples and summarised exactly, by the
*nearest-rank* definition: the p-th percentile of n sorted values is the
value of rank ``ceil(p / 100 * n)``. Frame lateness (one value per 20 ms per
call, millions in a long run) goes into a :class:`Histogram` with fixed
log-linear bins, which workers fill cheaply and the runner merges; its
percentiles are the upper edge of the bin holding that rank (so they never
understate), capped at the exact maximum.

This module also names every metric an objective may constrain
(:data:`DISTRIBUTIONS`, :data:`COUNTS`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

DISTRIBUTIONS: dict[str, str] = {
    "setup_answered_ms": "connect to 'answered'",
    "setup_first_frame_ms": "connect to the first audio frame",
    "dtmf_response_ms": "digit sent to the first audio frame of what follows",
    "first_prompt_ms": "'answered' to the start of the first prompt",
    "ring_ms": "'ringing' to 'connected'",
    "frame_lateness_ms": "audio frame arrival against the call's 20 ms schedule",
    "runner_lateness_ms": "the runner's own 20 ms scheduler, behind time",
}
COUNTS: dict[str, str] = {
    "calls_failed": "calls that did not go as their behaviour expects",
    "verify_failed": "calls whose server-side record or recording does not match",
    "frames_missing": "frames the server sent (stats) that never arrived",
    "frames_late": "caller frames the server found missing at its tick (stats)",
    "frames_dropped": "caller frames the server's jitter buffer dropped (stats)",
    "frames_unsent": "frames the server could not send (stats)",
    "frames_malformed": "caller frames the server refused (stats)",
}
STATISTICS = ("p50", "p90", "p99", "p999", "max")


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of ``values``; NaN if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered) - 1e-9))
    return float(ordered[min(rank, len(ordered)) - 1])


@dataclass(frozen=True, slots=True)
class Summary:
    """A distribution in a few figures (NaN where there is no data)."""

    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    p999: float
    max: float

    def get(self, statistic: str) -> float:
        value: float = getattr(self, statistic)
        return value

    def as_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }


def summarize(values: Sequence[float]) -> Summary:
    """Count, mean, p50, p90, p99, p99.9 and max of ``values`` (nearest rank)."""
    if not values:
        nan = math.nan
        return Summary(0, nan, nan, nan, nan, nan, nan)
    ordered = sorted(values)
    n = len(ordered)

    def rank(p: float) -> float:
        return float(ordered[max(1, math.ceil(p / 100.0 * n - 1e-9)) - 1])

    return Summary(
        n,
        math.fsum(ordered) / n,
        rank(50.0),
        rank(90.0),
        rank(99.0),
        rank(99.9),
        float(ordered[-1]),
    )


# Histogram bins, in ms: 0.1 wide to 10 ms, 1 to 100, 10 to 1000, 100 to 10000, then one more.
_BANDS: tuple[tuple[float, float, int], ...] = (
    (0.0, 0.1, 100),
    (10.0, 1.0, 90),
    (100.0, 10.0, 90),
    (1000.0, 100.0, 90),
)
BINS = sum(b[2] for b in _BANDS) + 1


def _upper_edges() -> list[float]:
    edges: list[float] = []
    for start, width, count in _BANDS:
        edges.extend(round(start + width * (i + 1), 6) for i in range(count))
    edges.append(math.inf)
    return edges


UPPER_EDGES: tuple[float, ...] = tuple(_upper_edges())


def bin_of(value_ms: float) -> int:
    """The histogram bin of a value in ms (negative values count as 0)."""
    if value_ms < 10.0:
        return int(value_ms * 10.0) if value_ms > 0 else 0
    if value_ms < 100.0:
        return 100 + int(value_ms - 10.0)
    if value_ms < 1000.0:
        return 190 + int((value_ms - 100.0) / 10.0)
    if value_ms < 10000.0:
        return 280 + int((value_ms - 1000.0) / 100.0)
    return BINS - 1


def _bins_of(v: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """:func:`bin_of` of every value of ``v``, with the very same float operations."""
    # Each band's arithmetic is done on that band's values only, so that no other
    # value (an infinity, a huge one) is cast to an integer. NaN is in no band: the
    # last bin, as in bin_of.
    out = np.full(v.shape, BINS - 1, dtype=np.intp)
    out[v <= 0] = 0
    band = (v > 0) & (v < 10.0)
    out[band] = (v[band] * 10.0).astype(np.intp)
    band = (v >= 10.0) & (v < 100.0)
    out[band] = 100 + (v[band] - 10.0).astype(np.intp)
    band = (v >= 100.0) & (v < 1000.0)
    out[band] = 190 + ((v[band] - 100.0) / 10.0).astype(np.intp)
    band = (v >= 1000.0) & (v < 10000.0)
    out[band] = 280 + ((v[band] - 1000.0) / 100.0).astype(np.intp)
    return out


class Histogram:
    """Counts of values (ms) in fixed log-linear bins; mergeable, with an exact max and mean."""

    __slots__ = ("counts", "max", "n", "total")

    def __init__(self) -> None:
        self.counts = [0] * BINS
        self.n = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, value_ms: float) -> None:
        # bin_of, inlined: this runs for every audio frame of every call.
        if value_ms < 10.0:
            i = int(value_ms * 10.0) if value_ms > 0 else 0
        elif value_ms < 100.0:
            i = 100 + int(value_ms - 10.0)
        else:
            i = bin_of(value_ms)
        self.counts[i] += 1
        self.n += 1
        self.total += value_ms
        if value_ms > self.max:
            self.max = value_ms

    def add_all(self, values: Sequence[float]) -> None:
        """``add`` each of ``values``, in order, in one go: the same counts, n, total and max.

        The bins are computed by numpy with the very float operations of
        :func:`bin_of`, so each value lands where ``add`` would put it; the total
        is summed left to right from the running one, as repeated ``add`` does.
        """
        if not values:
            return
        v = np.asarray(values, dtype=np.float64)
        counts = np.bincount(_bins_of(v), minlength=BINS)
        for i in np.flatnonzero(counts).tolist():
            self.counts[i] += int(counts[i])
        self.n += len(values)
        # Left to right from the running total (Python 3.11's float sum), like add.
        self.total = sum(values, self.total)
        top = float(v.max())
        if top > self.max:
            self.max = top

    def merge(self, other: Histogram) -> None:
        for i, c in enumerate(other.counts):
            if c:
                self.counts[i] += c
        self.n += other.n
        self.total += other.total
        self.max = max(self.max, other.max)

    def percentile(self, p: float) -> float:
        """Upper edge of the bin holding the nearest-rank ``p``-th value, capped at the max."""
        if not self.n:
            return math.nan
        rank = max(1, math.ceil(p / 100.0 * self.n - 1e-9))
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                return min(UPPER_EDGES[i], self.max)
        return self.max

    def count_over(self, threshold_ms: float) -> int:
        """How many values lie in bins wholly above ``threshold_ms`` (a lower bound)."""
        return sum(c for i, c in enumerate(self.counts) if i and UPPER_EDGES[i - 1] >= threshold_ms)

    def summary(self) -> Summary:
        if not self.n:
            return summarize([])
        return Summary(
            self.n,
            self.total / self.n,
            self.percentile(50.0),
            self.percentile(90.0),
            self.percentile(99.0),
            self.percentile(99.9),
            self.max,
        )

    def to_dict(self) -> dict[str, Any]:
        """A compact, JSON-ready form: only the bins that hold something."""
        return {
            "n": self.n,
            "total": self.total,
            "max": self.max,
            "bins": {str(i): c for i, c in enumerate(self.counts) if c},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Histogram:
        h = cls()
        h.n = int(data["n"])
        h.total = float(data["total"])
        h.max = float(data["max"])
        for i, c in data["bins"].items():
            h.counts[int(i)] = int(c)
        return h

    @classmethod
    def of(cls, values: Iterable[float]) -> Histogram:
        h = cls()
        for v in values:
            h.add(v)
        return h


STAT_LABELS = {
    "p50": "p50",
    "p90": "p90",
    "p99": "p99",
    "p999": "p99.9",
    "max": "max",
    "min": "min",
}


def fmt(v: Any) -> str:
    """A figure as the summary and the page show it: 1 or 2 decimals, ``-`` for none."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
    return str(v)
