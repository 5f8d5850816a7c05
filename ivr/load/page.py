"""The load report as one self-contained HTML page: tables and inline SVG plots, no script.

:func:`render_html` draws what :func:`ivr.load.report.build_report` made:
the verdict and each objective, the figures, the latency distributions
(CDFs and tails), lateness and concurrency over time, and outcomes per
behaviour (:mod:`ivr.load.svg`).
"""

from __future__ import annotations

import math
from collections import Counter
from html import escape
from typing import Any

from ivr.load.metrics import COUNTS, DISTRIBUTIONS, STAT_LABELS, UPPER_EDGES, Histogram, fmt
from ivr.load.svg import Axis, Series, line_chart, stacked_bars

OUTCOME_COLORS = {
    "ok": "#2ca02c",
    "sampled_out": "#17becf",
    "unverified": "#bcbd22",
    "failed": "#ff7f0e",
    "mismatch": "#d62728",
}


def _cdf(values: list[float]) -> list[tuple[float, float]]:
    v = sorted(x for x in values if x > 0)
    n = len(v)
    if n > 400:  # thin out: keep the shape and the tail
        idx = sorted(
            {round(i * (n - 1) / 300) for i in range(301)} | set(range(max(0, n - 100), n))
        )
        return [(v[i], (i + 1) / n) for i in idx]
    return [(x, (i + 1) / n) for i, x in enumerate(v)]


def _tail(h: Histogram) -> list[tuple[float, float]]:
    """Fraction of frames later than x, at each bin edge (a CCDF)."""
    if not h.n:
        return []
    pts, seen = [], 0
    for i, c in enumerate(h.counts):
        seen += c
        edge = UPPER_EDGES[i]
        if not math.isfinite(edge) or edge > max(h.max, 0.1) * 1.2:
            break
        pts.append((edge, max((h.n - seen) / h.n, 1e-7)))
    return pts


def render_html(report: dict[str, Any]) -> str:
    """One self-contained HTML page: tables and inline SVG plots, no script."""
    calls = report["calls"]
    sc = report["scenario"]
    spec = sc["spec"]
    limits: dict[str, list[tuple[float, str]]] = {}
    for o in report["objectives"]:
        if o["bound"] == "max" and o["metric"] in DISTRIBUTIONS:
            limits.setdefault(o["metric"], []).append(
                (o["limit"], f"{STAT_LABELS[o['statistic']]} ≤ {o['limit']:g}")
            )
    latency = [
        Series(
            "connect → answered",
            _cdf([c["answered_ms"] for c in calls if c["answered_ms"] is not None]),
        ),
        Series(
            "connect → first frame",
            _cdf([c["first_frame_ms"] for c in calls if c["first_frame_ms"] is not None]),
        ),
        Series("DTMF → response", _cdf([v for c in calls for v in c["dtmf_ms"]])),
        Series(
            "ringing → connected", _cdf([c["ring_ms"] for c in calls if c["ring_ms"] is not None])
        ),
    ]
    charts = [
        line_chart(
            "Latency distributions (share of samples at or below)",
            [s for s in latency if s.points],
            Axis("ms (log)", log=True),
            Axis("fraction", lo=0.0, hi=1.0),
        )
    ]
    lateness = Histogram.from_dict(report["histograms"]["frame_lateness_ms"])
    if lateness.n:
        charts.append(
            line_chart(
                f"Frame lateness: share of {lateness.n} frames later than x",
                [Series("audio frames", _tail(lateness), step=True)],
                Axis("lateness (ms)", lo=0.0),
                Axis(
                    "fraction (log)",
                    log=True,
                    lo=1e-6 if lateness.n >= 1e6 else 10 ** -math.ceil(math.log10(lateness.n)),
                    hi=1.0,
                    fmt="{:.0e}",
                ),
            )
        )
    tl = report["timeline"]
    if tl:
        charts.append(
            line_chart(
                "Frame lateness over time (per second)",
                [
                    Series(
                        "p99",
                        [
                            (t["t"], t["lateness_p99_ms"])
                            for t in tl
                            if t["lateness_p99_ms"] is not None
                        ],
                    ),
                    Series(
                        "max",
                        [
                            (t["t"], t["lateness_max_ms"])
                            for t in tl
                            if t["lateness_max_ms"] is not None
                        ],
                    ),
                ],
                Axis("time since start (s)", lo=0.0),
                Axis("ms", lo=0.0),
                hlines=limits.get("frame_lateness_ms", []),
            )
        )
        charts.append(
            line_chart(
                "Concurrency over time",
                [
                    Series("active calls", [(t["t"], t["active"]) for t in tl], step=True),
                    Series(
                        "calls started per second", [(t["t"], t["started"]) for t in tl], step=True
                    ),
                ],
                Axis("time since start (s)", lo=0.0),
                Axis("calls", lo=0.0),
            )
        )
    ver = {c["index"]: (c.get("verification") or {}).get("outcome") for c in calls}
    rows: dict[str, Counter[str]] = {}
    for c in calls:
        outcome = "failed" if c["outcome"] != "ok" else "ok"
        v = ver.get(c["index"])
        if v in ("mismatch", "sampled_out", "unverified") and outcome == "ok":
            outcome = str(v)
        elif v == "mismatch":
            outcome = "mismatch"
        rows.setdefault(c["behaviour"], Counter())[outcome] += 1
    charts.append(
        stacked_bars(
            "Outcomes per behaviour",
            [
                (b, [(k, float(n.get(k, 0))) for k in OUTCOME_COLORS])
                for b, n in sorted(rows.items())
            ],
            OUTCOME_COLORS,
        )
    )
    verdict = "PASS" if report["passed"] else "FAIL"
    stats = ("p50", "p90", "p99", "p999", "max")
    objective_rows = [
        _row(
            "PASS" if o["ok"] else "FAIL",
            o["metric"],
            f"{STAT_LABELS[o['statistic']]} {'≥' if o['bound'] == 'min' else '≤'} {o['limit']:g}",
            f"{fmt(o['value'])} {o['note']}",
            cls="ok" if o["ok"] else "bad",
        )
        for o in report["objectives"]
    ]
    metric_rows = [
        _row(k, s["count"], *(fmt(s[x]) for x in stats), DISTRIBUTIONS.get(k, ""))
        for k, s in report["metrics"].items()
    ]
    prompt_rows = [
        _row(k, s["count"], *(fmt(s[x]) for x in stats))
        for k, s in report["prompt_start_ms"].items()
    ]
    count_rows = [_row(k, fmt(v), COUNTS.get(k, "")) for k, v in report["counts"].items()]
    problems = [
        (f["index"], f["call_id"], f["behaviour"], f"{f['outcome']}: {f['detail']}")
        for f in report["outcomes"]["failed"]
    ] + [
        (m["index"], m["call_id"], m["behaviour"], "; ".join(m["problems"]))
        for m in (report.get("verification") or {}).get("mismatches", [])
    ]
    problem_rows = [_row(i, cid or "-", b, p) for i, cid, b, p in problems[:500]]
    machine, versions, runner, run = (
        report["machine"],
        report["versions"],
        report["runner"],
        report["run"],
    )
    arrival = spec["arrival"]
    summary = (
        f"{sum(sc['planned'].values())} calls to {spec['to']} ({spec['codec']}/{spec['rate']}), "
        f"concurrency {spec['concurrency']}, {arrival['rate_cps']:g} calls/s "
        f"(ramp {arrival['ramp_s']:g} s); started {run['started_at']}, {run['wall_s']:.1f} s "
        f"against {run['url']}{' (embedded)' if run['embedded'] else ''}."
    )
    cost = (
        f"Runner: {runner['cpu_s']} s CPU for {runner['call_s']} call-seconds "
        f"({fmt(runner['cpu_ms_per_call_s'])} ms CPU per call-second); scheduler lateness "
        f"p99 {fmt(runner['lateness']['p99'])} ms, max {fmt(runner['lateness']['max'])} ms."
    )
    where = (
        f"{machine['cpu_model']}, {machine['cpu_count']} CPUs, {machine['platform']}; "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
    )
    stat_heads = ["count", "p50", "p90", "p99", "p99.9", "max"]
    return "\n".join(
        [
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">',
            f"<title>ivr load: {escape(sc['name'])} ({verdict})</title>",
            f"<style>{STYLE}</style></head><body>",
            f"<h1>ivr load: {escape(sc['name'])} <span class='verdict {verdict.lower()}'>"
            f"{verdict}</span></h1>",
            f"<p>{escape(spec.get('description') or '')}</p>",
            f"<p>{escape(summary)}</p>",
            "<h2>Objectives</h2>",
            _table(["result", "metric", "bound", "measured"], objective_rows),
            "<h2>Plots</h2>",
            *charts,
            "<h2>Metrics (ms)</h2>",
            _table(["metric", *stat_heads, ""], metric_rows),
            "<h2>Prompt start times (ms after 'answered')</h2>",
            _table(["node", *stat_heads], prompt_rows),
            "<h2>Counts</h2>",
            _table(["count", "value", ""], count_rows),
            f"<h2>Failed and mismatching calls ({len(problems)})</h2>",
            _table(["#", "call id", "behaviour", "what"], problem_rows),
            "<h2>Runner and machine</h2>",
            f"<p>{escape(cost)}</p>",
            f"<p>{escape(where)}.</p>",
            "</body></html>",
            "",
        ]
    )


STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1000px; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border-bottom: 1px solid #ddd; padding: 3px 10px; text-align: right; }
td:first-child, th:first-child, td:last-child { text-align: left; }
td:last-child { color: #555; }
tr.bad td { background: #fde8e8; } tr.ok td:first-child { color: #2a7a2a; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 4px; color: #fff; }
.verdict.pass { background: #2a7a2a; } .verdict.fail { background: #c0392b; }
svg { display: block; margin: 12px 0; }
"""


def _row(*cells: Any, cls: str | None = None) -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<tr{attr}>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>"


def _table(heads: list[str], rows: list[str]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in heads)
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"
