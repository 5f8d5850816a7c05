"""The figures of a run, its verdict, and the files: ``report.json`` and ``report.html``.

:func:`build_report` turns a :class:`~ivr.load.runner.RunResult` into one
JSON-ready dict: the scenario, the versions and the machine, every metric
(p50, p90, p99, p99.9, max), counts per behaviour and outcome, the
verification and every mismatch with its call id, the server's own stats,
the runner's own cost, time series, each objective with its value, and every
call. :func:`summary_text` is the table printed at the end;
:func:`render_html` is one self-contained page with inline SVG plots
(latency distributions, lateness over time, concurrency over time, outcomes
per behaviour).

Unless a scenario sets them itself, two objectives always apply: no call may
fail (``calls_failed`` max 0) and, when verification runs, no call may
mismatch (``verify_failed`` max 0).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
from collections import Counter
from dataclasses import asdict
from html import escape
from importlib import metadata
from pathlib import Path
from typing import Any

from ivr import __version__
from ivr.load.loop import loop_name
from ivr.load.metrics import COUNTS, DISTRIBUTIONS, UPPER_EDGES, Histogram, Summary, summarize
from ivr.load.runner import RunResult
from ivr.load.scenario import Threshold
from ivr.load.svg import Axis, Series, line_chart, stacked_bars

REPORT_VERSION = 1
DEFAULT_OBJECTIVES = {"calls_failed": Threshold(max=0), "verify_failed": Threshold(max=0)}
STAT_LABELS = {
    "p50": "p50",
    "p90": "p90",
    "p99": "p99",
    "p999": "p99.9",
    "max": "max",
    "min": "min",
}
OUTCOME_COLORS = {
    "ok": "#2ca02c",
    "sampled_out": "#17becf",
    "unverified": "#bcbd22",
    "failed": "#ff7f0e",
    "mismatch": "#d62728",
}


def _versions() -> dict[str, str]:
    out = {"ivr": __version__, "python": platform.python_version()}
    for dist in ("aiohttp", "websockets", "numpy", "pydantic", "soundfile", "uvloop"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "?"
    return out


def _machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    with contextlib.suppress(ValueError, OSError, AttributeError):
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "cpu_affinity": affinity,
        "memory_bytes": memory,
    }


def _nan_to_none(value: float | int | None) -> float | int | None:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def distributions(run: RunResult) -> dict[str, Summary]:
    calls = run.calls
    return {
        "setup_answered_ms": summarize([c.answered_ms for c in calls if c.answered_ms is not None]),
        "setup_first_frame_ms": summarize(
            [c.first_frame_ms for c in calls if c.first_frame_ms is not None]
        ),
        "dtmf_response_ms": summarize([v for c in calls for v in c.dtmf_ms]),
        "first_prompt_ms": summarize(
            [c.first_prompt_ms for c in calls if c.first_prompt_ms is not None]
        ),
        "ring_ms": summarize([c.ring_ms for c in calls if c.ring_ms is not None]),
        "frame_lateness_ms": run.lateness.summary(),
        "runner_lateness_ms": run.runner_lateness.summary(),
    }


def _stat_total(run: RunResult, key: str) -> int:
    return sum(int((c.stats or {}).get(key) or 0) for c in run.calls)


def counts(run: RunResult) -> dict[str, int | None]:
    return {
        "calls_failed": sum(1 for c in run.calls if not c.ok),
        "verify_failed": len(run.verification.mismatches) if run.verification is not None else None,
        "frames_missing": sum(c.frames_missing for c in run.calls),
        "frames_late": _stat_total(run, "frames_late"),
        "frames_dropped": _stat_total(run, "frames_dropped"),
        "frames_unsent": _stat_total(run, "frames_unsent"),
        "frames_malformed": _stat_total(run, "frames_malformed"),
    }


def evaluate(
    objectives: dict[str, Threshold], dists: dict[str, Summary], totals: dict[str, int | None]
) -> list[dict[str, Any]]:
    """Each bound of each objective, with the measured value and whether it holds."""
    out = []
    for metric, threshold in objectives.items():
        for stat, limit in threshold.bounds():
            value: float | int | None
            value = dists[metric].get(stat) if metric in DISTRIBUTIONS else totals.get(metric)
            measured = value is not None and not (isinstance(value, float) and math.isnan(value))
            ok = measured and (value >= limit if stat == "min" else value <= limit)  # type: ignore[operator]
            out.append(
                {
                    "metric": metric,
                    "statistic": stat,
                    "bound": "min" if stat == "min" else "max",
                    "limit": limit,
                    "value": _nan_to_none(value),
                    "ok": bool(ok),
                    "note": "" if measured else "not measured",
                }
            )
    return out


def objectives_for(run: RunResult) -> dict[str, Threshold]:
    objectives = dict(run.scenario.spec.objectives)
    for metric, threshold in DEFAULT_OBJECTIVES.items():
        if metric == "verify_failed" and run.verification is None:
            continue
        objectives.setdefault(metric, threshold)
    return objectives


def build_report(run: RunResult) -> dict[str, Any]:
    """Every figure of the run, JSON-ready."""
    spec = run.scenario.spec
    dists = distributions(run)
    totals = counts(run)
    results = evaluate(objectives_for(run), dists, totals)
    by_behaviour: dict[str, Counter[str]] = {}
    for c in run.calls:
        by_behaviour.setdefault(c.behaviour, Counter())[c.outcome] += 1
    prompt_starts: dict[str, list[float]] = {}
    for c in run.calls:
        for node, _prompt, event, at, _interrupted in c.prompts:
            if event == "start":
                prompt_starts.setdefault(str(node), []).append(float(at))
    stats_keys = (
        "frames_sent",
        "frames_received",
        "frames_late",
        "frames_dropped",
        "frames_malformed",
        "frames_unsent",
    )
    call_s = sum((c.ended_s or c.started_s) - c.started_s for c in run.calls)
    checks = {ch.index: ch for ch in run.verification.checks} if run.verification else {}
    timeline = []
    for sec, t in run.timeline.items():
        h: Histogram = t["lateness"]
        timeline.append(
            {
                "t": sec,
                "active": t["active"],
                "started": t["started"],
                "ended": t["ended"],
                "frames": h.n,
                "lateness_p99_ms": _nan_to_none(h.percentile(99.0)),
                "lateness_max_ms": h.max if h.n else None,
                "lateness": h.to_dict(),
            }
        )
    calls_out = []
    for c in run.calls:
        d = asdict(c)
        ch = checks.get(c.index)
        d["verification"] = {"outcome": ch.outcome, "problems": ch.problems} if ch else None
        calls_out.append(d)
    passed = all(r["ok"] for r in results)
    return {
        "report_version": REPORT_VERSION,
        "passed": passed,
        "scenario": {
            "name": spec.name,
            "source": run.scenario.source,
            "spec": spec.model_dump(mode="json"),
            "planned": dict(Counter(c.behaviour for c in run.calls)),
        },
        "run": {
            "started_at": run.started_at,
            "url": run.target.url,
            "embedded": run.target.embedded,
            "processes": run.processes,
            "wall_s": round(run.wall_s, 3),
            "notes": run.notes,
        },
        "versions": _versions(),
        "machine": _machine(),
        "metrics": {k: v.as_dict() for k, v in dists.items()},
        "counts": totals,
        "prompt_start_ms": {k: summarize(v).as_dict() for k, v in sorted(prompt_starts.items())},
        "outcomes": {
            "by_behaviour": {b: dict(sorted(n.items())) for b, n in sorted(by_behaviour.items())},
            "failed": [
                {
                    "index": c.index,
                    "call_id": c.call_id,
                    "behaviour": c.behaviour,
                    "outcome": c.outcome,
                    "detail": c.detail,
                }
                for c in run.calls
                if not c.ok
            ],
        },
        "verification": (
            {
                "by_behaviour": run.verification.counts(),
                "mismatches": [
                    {
                        "index": m.index,
                        "call_id": m.call_id,
                        "behaviour": m.behaviour,
                        "problems": m.problems,
                    }
                    for m in run.verification.mismatches
                ],
            }
            if run.verification is not None
            else None
        ),
        "server_stats": {k: _stat_total(run, k) for k in stats_keys},
        "runner": {
            "cpu_s": round(run.cpu_s, 3),
            "call_s": round(call_s, 3),
            "cpu_ms_per_call_s": round(run.cpu_s * 1000 / call_s, 4) if call_s else None,
            "loop": loop_name(),
            "lateness": dists["runner_lateness_ms"].as_dict(),
        },
        "agents": asdict(run.agents) if run.scenario.spec.agents is not None else None,
        "objectives": results,
        "timeline": timeline,
        "histograms": {
            "frame_lateness_ms": run.lateness.to_dict(),
            "runner_lateness_ms": run.runner_lateness.to_dict(),
        },
        "calls": calls_out,
    }


def exit_status(report: dict[str, Any]) -> int:
    """0 when every objective holds, 1 when one fails."""
    return 0 if report["passed"] else 1


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
    return str(v)


def summary_text(report: dict[str, Any]) -> str:
    """The summary table printed at the end of a run."""
    sc, run = report["scenario"], report["run"]
    spec = sc["spec"]
    lines = [
        f"scenario {sc['name']}: {sum(sc['planned'].values())} calls to {spec['to']} "
        f"({spec['codec']}/{spec['rate']}), {run['wall_s']:.1f} s, "
        + (f"{run['processes']} worker process(es)" if run["processes"] else "callers in-process")
        + f", {run['url']}",
        "",
    ]
    ver = (report.get("verification") or {}).get("by_behaviour", {})
    head = f"  {'behaviour':<16}{'calls':>7}{'ok':>6}{'failed':>8}"
    head += f"{'verified':>10}{'mismatch':>10}{'sampled':>9}" if report.get("verification") else ""
    lines.append(head)
    for b, outs in report["outcomes"]["by_behaviour"].items():
        n = sum(outs.values())
        ok = outs.get("ok", 0)
        row = f"  {b:<16}{n:>7}{ok:>6}{n - ok:>8}"
        if report.get("verification"):
            v = ver.get(b, {})
            row += f"{v.get('ok', 0):>10}{v.get('mismatch', 0):>10}{v.get('sampled_out', 0):>9}"
        lines.append(row)
    lines += [
        "",
        f"  {'metric (ms)':<22}{'count':>8}{'p50':>9}{'p90':>9}{'p99':>9}{'p99.9':>9}{'max':>9}",
    ]
    for name, s in report["metrics"].items():
        if not s["count"]:
            continue
        lines.append(
            f"  {name:<22}{s['count']:>8}"
            + "".join(f"{_fmt(s[k]):>9}" for k in ("p50", "p90", "p99", "p999", "max"))
        )
    st, cnt = report["server_stats"], report["counts"]
    lines += [
        "",
        f"  frames: server sent {st['frames_sent']}, "
        f"missing at the caller {cnt['frames_missing']}; "
        f"caller frames late {cnt['frames_late']}, dropped {cnt['frames_dropped']}, "
        f"unsent {cnt['frames_unsent']}, malformed {cnt['frames_malformed']}",
    ]
    r = report["runner"]
    if r["cpu_ms_per_call_s"] is not None:
        lines.append(
            f"  runner: {r['cpu_s']:.2f} s CPU for {r['call_s']:.0f} call-seconds "
            f"({r['cpu_ms_per_call_s']:.3f} ms per call-second)"
        )
    failed = report["outcomes"]["failed"]
    if failed:
        lines += ["", f"  failed calls ({len(failed)}):"]
        for f in failed[:20]:
            where = f"#{f['index']} {f['behaviour']} {f['call_id'] or '-'}"
            lines.append(f"    {where}: {f['outcome']} {f['detail']}")
        if len(failed) > 20:
            lines.append(f"    ... and {len(failed) - 20} more (report.json)")
    mismatches = (report.get("verification") or {}).get("mismatches", [])
    if mismatches:
        lines += ["", f"  verification mismatches ({len(mismatches)}):"]
        for m in mismatches[:20]:
            lines.append(
                f"    #{m['index']} {m['behaviour']} {m['call_id']}: {'; '.join(m['problems'])}"
            )
        if len(mismatches) > 20:
            lines.append(f"    ... and {len(mismatches) - 20} more (report.json)")
    for note in run["notes"]:
        lines.append(f"  note: {note}")
    lines += ["", "  objectives:"]
    for o in report["objectives"]:
        op = ">=" if o["bound"] == "min" else "<="
        bound = f"{o['metric']} {STAT_LABELS[o['statistic']]} {op} {o['limit']:g}"
        note = f", {o['note']}" if o["note"] else ""
        lines.append(
            f"    {'PASS' if o['ok'] else 'FAIL'}  {bound}  (measured {_fmt(o['value'])}{note})"
        )
    failing = [
        f"{o['metric']} {STAT_LABELS[o['statistic']]}" for o in report["objectives"] if not o["ok"]
    ]
    lines.append("")
    lines.append("result: PASS" if not failing else f"result: FAIL ({', '.join(failing)})")
    return "\n".join(lines)


# -- HTML ------------------------------------------------------------------------------


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
            f"{_fmt(o['value'])} {o['note']}",
            cls="ok" if o["ok"] else "bad",
        )
        for o in report["objectives"]
    ]
    metric_rows = [
        _row(k, s["count"], *(_fmt(s[x]) for x in stats), DISTRIBUTIONS.get(k, ""))
        for k, s in report["metrics"].items()
    ]
    prompt_rows = [
        _row(k, s["count"], *(_fmt(s[x]) for x in stats))
        for k, s in report["prompt_start_ms"].items()
    ]
    count_rows = [_row(k, _fmt(v), COUNTS.get(k, "")) for k, v in report["counts"].items()]
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
        f"({_fmt(runner['cpu_ms_per_call_s'])} ms CPU per call-second); scheduler lateness "
        f"p99 {_fmt(runner['lateness']['p99'])} ms, max {_fmt(runner['lateness']['max'])} ms."
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


def write_report(report: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``folder`` (created if need be)."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path, html_path = folder / "report.json", folder / "report.html"
    json_path.write_text(json.dumps(_clean(report), indent=1, allow_nan=False) + "\n")
    html_path.write_text(render_html(report))
    return json_path, html_path


def _clean(value: Any) -> Any:
    """The report with NaN and infinities as null: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value
