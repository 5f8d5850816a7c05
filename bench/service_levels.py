"""Service levels under load, each as a ratio to the bare baseline B measured in the same run.

Three measurements of the softswitch (consent flow, bots, half the calls
recorded), the server pinned to one CPU and the load runner to the other:

* **set-up**: ``0.5 x B`` calls established, then 20 new calls a second for
  ``--probe-s`` seconds; the new calls' set-up time (connect to ``answered``,
  and to the first audio frame), p99 (target: at most 100 ms);
* **DTMF**: ``0.8 x B`` calls established, then 5 calls a second that press a
  digit half a second into the menu prompt; digit to the first frame of what
  follows, p99 (target: at most 30 ms);
* **soak**: after a warm-up of ``--warmup-calls`` short calls (1,500 at 20 a
  second: a new server's memory grows over its first ~1,500 calls, then stays
  flat), ``0.8 x B`` calls for ``--soak-s`` seconds (600 by default), each
  call 60 s long and replaced as it ends; no failed call, the server's memory
  (RSS, sampled every 5 s) growing under 5% from the first steady minute to
  the last, and no second whose frame lateness exceeds 100 ms.

B (``bench/baseline_server.py``, a task per call) is searched for first, as
``bench/capacity.py`` does; ``--b N`` skips the search (the figures are then
ratios to a B from another run, and the output says so).

    python bench/service_levels.py [--b N] [--soak-s 600] [--skip soak]

It prints its figures; nothing is written outside a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from capacity import (
    MIXES,
    SETTLE_S,
    bench_config,
    scenario,
    search,
    start_runner,
    start_server,
    stop,
)

SETUP_P99_MS, DTMF_P99_MS = 100.0, 30.0
SOAK_GROWTH, SOAK_BURST_MS = 0.05, 100.0
SOAK_CALL_S = 60.0
RAMP_RATE = 50.0  # arrivals a second while establishing the background calls


def load(report: Path) -> Any:
    return json.loads(report.read_text())


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def probe_under_load(
    share: float,
    b: int,
    probe: dict[str, Any],
    args: argparse.Namespace,
    config: Path,
    folder: Path,
) -> tuple[int, Any, Path]:
    """A fresh server with ``share x B`` calls established (half recorded), then ``probe``.

    Returns the background's size, the probe's report and the background's report.
    """
    n = round(share * b)
    server, url = start_server("halfrec", config, folder, args.server_cpu)
    try:
        ramp_s = n / RAMP_RATE
        hold_s = ramp_s + args.probe_s + 10
        spec = scenario(f"{probe['name']}-background", n, n, RAMP_RATE, hold_s, MIXES["halfrec"])
        bg, bg_report = start_runner(spec, url, folder, args.runner_cpu)
        time.sleep(ramp_s + SETTLE_S)
        runner, report = start_runner(probe, url, folder, args.runner_cpu)
        runner.wait()
        bg.wait(timeout=300)
    finally:
        stop(server)
    return n, load(report), bg_report


def background_line(report: Path) -> str:
    r = load(report)
    late = r["metrics"]["frame_lateness_ms"]
    return (
        f"background: {r['counts']['calls_failed']} failed, lateness p99 {late['p99']:.1f} "
        f"max {late['max']:.1f} ms"
    )


def setup_test(b: int, args: argparse.Namespace, config: Path, folder: Path) -> bool:
    calls = round(20 * args.probe_s)
    probe = scenario("setup-probe", calls, calls, 20.0, 2.0, MIXES["halfrec"])
    n, r, bg_report = probe_under_load(0.5, b, probe, args, config, folder)
    answered = r["metrics"]["setup_answered_ms"]
    first = r["metrics"]["setup_first_frame_ms"]
    ok = answered["p99"] <= SETUP_P99_MS and first["p99"] <= SETUP_P99_MS
    ok = ok and r["counts"]["calls_failed"] == 0
    print(
        f"  set-up, 20 new calls/s onto {n} established (0.5 x B): {answered['count']} calls, "
        f"to answered p50 {answered['p50']:.1f} p99 {answered['p99']:.1f} ms, to first frame "
        f"p50 {first['p50']:.1f} p99 {first['p99']:.1f} ms, {r['counts']['calls_failed']} failed "
        f"(target p99 <= {SETUP_P99_MS:g}): {'met' if ok else 'NOT met'}\n"
        f"    {background_line(bg_report)}",
        flush=True,
    )
    return bool(ok)


def dtmf_test(b: int, args: argparse.Namespace, config: Path, folder: Path) -> bool:
    calls = round(5 * args.probe_s)
    mix = {"refuse": {"weight": 1, "press_after_s": 0.5}}
    probe = scenario("dtmf-probe", calls, calls, 5.0, 1.0, mix)
    n, r, bg_report = probe_under_load(0.8, b, probe, args, config, folder)
    dtmf = r["metrics"]["dtmf_response_ms"]
    ok = dtmf["count"] > 0 and dtmf["p99"] <= DTMF_P99_MS and r["counts"]["calls_failed"] == 0
    print(
        f"  DTMF-to-response with {n} established (0.8 x B), 5 probe calls/s: {dtmf['count']} "
        f"digits, p50 {dtmf['p50']:.1f} p99 {dtmf['p99']:.1f} max {dtmf['max']:.1f} ms, "
        f"{r['counts']['calls_failed']} failed (target p99 <= {DTMF_P99_MS:g}): "
        f"{'met' if ok else 'NOT met'}\n    {background_line(bg_report)}",
        flush=True,
    )
    return bool(ok)


def soak_test(b: int, args: argparse.Namespace, config: Path, folder: Path) -> bool:
    n = round(0.8 * b)
    rate = n / (SOAK_CALL_S + SETTLE_S)
    calls = round(rate * args.soak_s)
    server, url = start_server("halfrec", config, folder, args.server_cpu)
    fresh_kib = rss_kib(server.pid)
    warmup_failed = 0
    if args.warmup_calls:
        # A new server's memory grows over its first ~1,500 calls (allocator
        # arenas, SQLite's page cache and statement cache filling up) and then
        # stays flat; a soak judges growth after that, as soak tests do.
        spec = scenario("warmup", args.warmup_calls, 100, 20.0, 3.0, MIXES["halfrec"])
        warm_proc, warm_report = start_runner(spec, url, folder, args.runner_cpu)
        warm_proc.wait()
        warmup_failed = load(warm_report)["counts"]["calls_failed"]
    warm_kib = rss_kib(server.pid)
    samples: list[tuple[float, int]] = []
    done = threading.Event()
    t0 = time.monotonic()

    def sample() -> None:
        while not done.wait(5.0):
            samples.append((time.monotonic() - t0, rss_kib(server.pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        spec = scenario("soak", calls, n, rate, SOAK_CALL_S, MIXES["halfrec"])
        soak_proc, report = start_runner(spec, url, folder, args.runner_cpu)
        soak_proc.wait()
    finally:
        done.set()
        sampler.join()
        stop(server)
    r = load(report)
    warm = SOAK_CALL_S + SETTLE_S + 30  # concurrency is steady from here on
    end = max(t for t, _ in samples) if samples else 0.0
    early = [kib for t, kib in samples if warm <= t < warm + 60]
    late = [kib for t, kib in samples if t >= end - 60]
    growth = statistics.median(late) / statistics.median(early) - 1 if early and late else None
    steady = [s for s in r["timeline"] if warm <= s["t"] <= args.soak_s]
    burst = max((s["lateness_max_ms"] or 0.0 for s in r["timeline"]), default=0.0)
    active = statistics.median(s["active"] for s in steady) if steady else 0
    failed = r["counts"]["calls_failed"]
    late_all = r["metrics"]["frame_lateness_ms"]
    ok = failed == 0 and growth is not None and growth < SOAK_GROWTH and burst <= SOAK_BURST_MS
    ok = ok and warmup_failed == 0
    print(
        f"  warm-up: {args.warmup_calls} calls of 3 s at 20/s, {warmup_failed} failed; server RSS "
        f"{fresh_kib / 1024:.1f} MiB fresh, {warm_kib / 1024:.1f} MiB after"
    )
    print(
        f"  soak, {args.soak_s:g} s at {n} calls (0.8 x B), {SOAK_CALL_S:g} s calls replaced as "
        f"they end: {len(r['calls'])} calls, median active "
        f"{active:.0f}, {failed} failed; server RSS {statistics.median(early) / 1024:.1f} -> "
        f"{statistics.median(late) / 1024:.1f} MiB ({(growth or 0) * 100:+.1f}%, target < "
        f"{SOAK_GROWTH * 100:g}%); worst second's lateness {burst:.1f} ms (target <= "
        f"{SOAK_BURST_MS:g}); lateness p99 {late_all['p99']:.1f} p99.9 {late_all['p999']:.1f} "
        f"ms: {'met' if ok else 'NOT met'}",
        flush=True,
    )
    return ok


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--b", type=int, help="use this B instead of measuring it")
    p.add_argument("--budget-s", type=float, default=240.0, help="time for the search of B")
    p.add_argument("--probe-s", type=float, default=15.0, help="length of each probe")
    p.add_argument("--soak-s", type=float, default=600.0)
    p.add_argument(
        "--warmup-calls", type=int, default=1500, help="short calls placed before the soak"
    )
    p.add_argument("--skip", action="append", default=[], choices=["setup", "dtmf", "soak"])
    p.add_argument("--server-cpu", default="0")
    p.add_argument("--runner-cpu", default="1")
    p.add_argument("--rate", type=float, default=RAMP_RATE, help=argparse.SUPPRESS)
    p.add_argument("--window-s", type=float, default=8.0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if shutil.which("taskset") is None:
        print("taskset is needed (util-linux)", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="ivr-service-"))
    start = time.monotonic()
    try:
        config = bench_config(folder)
        if args.b:
            b = args.b
            print(f"service levels: B = {b} given (not measured in this run)", flush=True)
        else:
            print("service levels: searching for B first", flush=True)
            trials: list[Any] = []
            b, _ = search(
                "B", 200, 6, time.monotonic() + args.budget_s, args, config, folder, trials
            )
            print(f"  B = {b} calls", flush=True)
        if not b:
            print("B could not be measured", file=sys.stderr)
            return 1
        results = {}
        if "setup" not in args.skip:
            results["setup"] = setup_test(b, args, config, folder)
        if "dtmf" not in args.skip:
            results["dtmf"] = dtmf_test(b, args, config, folder)
        if "soak" not in args.skip:
            results["soak"] = soak_test(b, args, config, folder)
        verdicts = ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in results.items())
        print(f"  {verdicts}; total {time.monotonic() - start:.0f} s", flush=True)
        return 0 if all(results.values()) else 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
