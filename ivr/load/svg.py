"""Small inline SVG charts for the HTML report: lines (linear or log axes) and stacked bars.

Hand-written so the report stays one self-contained file with no script and
no dependency: every chart is a ``<svg>`` element with its own axes, ticks,
legend and an optional dashed threshold line.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    points: Sequence[tuple[float, float]]
    color: str = ""
    step: bool = False


@dataclass(frozen=True, slots=True)
class Axis:
    label: str
    log: bool = False
    lo: float | None = None
    hi: float | None = None
    fmt: str = "{:g}"
    extra: list[float] = field(default_factory=list)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering [lo, hi]."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [0.0]
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 10))
        v += step
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten covering [lo, hi] (and 2 and 5 times them when the range is short)."""
    lo, hi = max(lo, 1e-12), max(hi, lo * 10)
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    mults = (1, 2, 5) if b - a <= 3 else (1,)
    return [m * 10.0**e for e in range(a, b + 1) for m in mults if lo <= m * 10.0**e <= hi * 1.0001]


def _bounds(values: list[float], axis: Axis) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v) and (not axis.log or v > 0)]
    lo = axis.lo if axis.lo is not None else (min(finite) if finite else 0.0)
    hi = axis.hi if axis.hi is not None else (max(finite) if finite else 1.0)
    if axis.log:
        lo = max(lo, 1e-9)
        if hi <= lo:
            hi = lo * 10
        return 10 ** math.floor(math.log10(lo)), 10 ** math.ceil(math.log10(hi))
    if hi <= lo:
        hi = lo + 1.0
    ticks = nice_ticks(lo, hi)
    return min(lo, ticks[0]), max(hi, ticks[-1])


def _text(x: float, y: float, text: str, attrs: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" {attrs}>{escape(text)}</text>'


def line_chart(
    title: str,
    series: Sequence[Series],
    x: Axis,
    y: Axis,
    *,
    hlines: Sequence[tuple[float, str]] = (),
    width: int = 760,
    height: int = 280,
) -> str:
    """A line chart; ``hlines`` are dashed horizontal references (objectives)."""
    left, right, top, bottom = 64, 16, 44, 44
    pw, ph = width - left - right, height - top - bottom
    xs = [p[0] for s in series for p in s.points]
    ys = [p[1] for s in series for p in s.points] + [h[0] for h in hlines]
    x0, x1 = _bounds(xs, x)
    y0, y1 = _bounds(ys, y)

    def sx(v: float) -> float:
        if x.log:
            v = max(v, x0)
            return left + pw * (math.log10(v) - math.log10(x0)) / (math.log10(x1) - math.log10(x0))
        return left + pw * (v - x0) / (x1 - x0)

    def sy(v: float) -> float:
        if y.log:
            v = max(v, y0)
            return top + ph * (
                1 - (math.log10(v) - math.log10(y0)) / (math.log10(y1) - math.log10(y0))
            )
        return top + ph * (1 - (v - y0) / (y1 - y0))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" {FONT}>',
        f'<text x="{left}" y="16" font-size="13" font-weight="600">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#ccc"/>',
    ]
    for t in log_ticks(x0, x1) if x.log else nice_ticks(x0, x1, 8):
        if x0 <= t <= x1:
            px = sx(t)
            out.append(
                f'<line x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{top + ph}" stroke="#eee"/>'
            )
            out.append(_text(px, top + ph + 14, x.fmt.format(t), 'text-anchor="middle"'))
    for t in log_ticks(y0, y1) if y.log else nice_ticks(y0, y1):
        if y0 <= t <= y1:
            py = sy(t)
            out.append(
                f'<line x1="{left}" y1="{py:.1f}" x2="{left + pw}" y2="{py:.1f}" stroke="#eee"/>'
            )
            out.append(_text(left - 6, py + 4, y.fmt.format(t), 'text-anchor="end"'))
    out.append(
        f'<text x="{left + pw / 2}" y="{height - 8}" text-anchor="middle">{escape(x.label)}</text>'
    )
    out.append(
        f'<text x="14" y="{top + ph / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + ph / 2})">{escape(y.label)}</text>'
    )
    for value, label in hlines:
        if y0 <= value <= y1:
            py = sy(value)
            out.append(
                f'<line x1="{left}" y1="{py:.1f}" x2="{left + pw}" y2="{py:.1f}" '
                f'stroke="#d62728" stroke-dasharray="5 4"/>'
            )
            out.append(_text(left + pw - 4, py - 4, label, 'text-anchor="end" fill="#d62728"'))
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        pts = [(sx(px), sy(py)) for px, py in s.points if math.isfinite(px) and math.isfinite(py)]
        if not pts:
            continue
        if s.step:
            stepped = [pts[0]]
            for a, b in itertools.pairwise(pts):
                stepped += [(b[0], a[1]), b]
            pts = stepped
        d = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{d}"/>')
        lx = left + 170 * i
        out.append(f'<rect x="{lx}" y="24" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{lx + 14}" y="33">{escape(s.label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def stacked_bars(
    title: str,
    rows: Sequence[tuple[str, Sequence[tuple[str, float]]]],
    colors: dict[str, str],
    *,
    width: int = 760,
) -> str:
    """Horizontal bars, one per row, split into labelled segments (counts)."""
    left, right, top, row_h = 150, 60, 44, 26
    height = top + row_h * max(1, len(rows)) + 12
    pw = width - left - right
    total_max = max((sum(v for _, v in segs) for _, segs in rows), default=1.0) or 1.0
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" {FONT}>',
        f'<text x="8" y="16" font-size="13" font-weight="600">{escape(title)}</text>',
    ]
    for i, (name, color) in enumerate(colors.items()):
        lx = left + 110 * i
        out.append(f'<rect x="{lx}" y="24" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{lx + 14}" y="33">{escape(name)}</text>')
    for r, (label, segs) in enumerate(rows):
        y = top + r * row_h
        out.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
        xpos = float(left)
        for name, value in segs:
            if value <= 0:
                continue
            w = pw * value / total_max
            out.append(
                f'<rect x="{xpos:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" '
                f'fill="{colors.get(name, "#999")}"><title>{escape(name)}: {value:g}</title></rect>'
            )
            xpos += w
        out.append(f'<text x="{xpos + 4:.1f}" y="{y + 15}">{sum(v for _, v in segs):g}</text>')
    out.append("</svg>")
    return "\n".join(out)
