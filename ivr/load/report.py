"""The figures of a run, its verdict, and the files: ``report.json`` and ``report.html``.

:func:`build_report` turns a :class:`~ivr.load.runner.RunResult` into one
JSON-ready dict: the scenario, the versions and the machine, every metric
(p50, p90, p99, p99.9, max), counts per behaviour and outcome, the
verification and every mismatch with its call id, the server's own stats,
the runner's own cost, time series, each objective with its value, and every
call. :func:`summary_text` is the table printed at the end;
:func:`ivr.load.page.render_html` is one self-contained page with inline SVG
plots (latency distributions, lateness over time, concurrency over time,
outcomes per behaviour).

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
from importlib import metadata
from pathlib import Path
from typing import Any

from ivr import __version__
from ivr.eventloop import loop_name
from ivr.load.metrics import (
    DISTRIBUTIONS,
    STAT_LABELS,
    Histogram,
    Summary,
    fmt,
    summarize,
)
from ivr.load.page import render_html
from ivr.load.runner import RunResult
from ivr.load.scenario import Threshold

REPORT_VERSION = 1
DEFAULT_OBJECTIVES = {"calls_failed": Threshold(max=0), "verify_failed": Threshold(max=0)}


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
            + "".join(f"{fmt(s[k]):>9}" for k in ("p50", "p90", "p99", "p999", "max"))
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
            f"    {'PASS' if o['ok'] else 'FAIL'}  {bound}  (measured {fmt(o['value'])}{note})"
        )
    failing = [
        f"{o['metric']} {STAT_LABELS[o['statistic']]}" for o in report["objectives"] if not o["ok"]
    ]
    lines.append("")
    lines.append("result: PASS" if not failing else f"result: FAIL ({', '.join(failing)})")
    return "\n".join(lines)


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
