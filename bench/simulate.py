"""How fast the simulator runs: speed-up over real time, and call-seconds per CPU second.

Two figures (issue 17), each the median of ``--repeats`` runs in this one
process, pinned to one core:

1. ``ivr simulate scenarios/consent-mix.yaml`` (60 calls, person agents on
   the desk line, every recording verified): the simulated duration (what
   the same run takes in real time) over the wall time, switch start-up and
   verification included. Target: at least 100x.
2. ``--calls`` calls (default 1,000) held at once on ``bench/capacity.py``'s
   consent flow (thousands of bots, half the callers recorded): simulated
   call-seconds per CPU second, with the peak concurrency reached, without
   verification (the switch's and the callers' work only).

    python bench/simulate.py [--repeats 5] [--calls 1000] [--talk-s 30] [--cpu 0]

Nothing is written outside a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from capacity import MIXES, bench_config, scenario  # noqa: E402

from ivr.config import load_config  # noqa: E402
from ivr.load.cli import resolve_scenario  # noqa: E402
from ivr.load.scenario import load_scenario  # noqa: E402
from ivr.simulate.run import simulate  # noqa: E402


def timed(fn: Any) -> tuple[Any, float, float]:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall0, time.process_time() - cpu0


def consent_mix(repeats: int) -> None:
    sc = load_scenario(resolve_scenario("consent-mix"), {})
    config = load_config(None)
    simulate(sc, config)  # imports and caches warm, as a second run of the command finds them
    walls, ups = [], []
    for _ in range(repeats):
        sim, wall, _cpu = timed(lambda: simulate(sc, config))
        assert sim.report()["passed"], "consent-mix failed in virtual time"
        walls.append(wall)
        ups.append(sim.simulated_s / wall)
    print(
        f"consent-mix: {sim.simulated_s:.1f} s simulated (60 calls, all verified) in "
        f"{statistics.median(walls):.3f} s median wall of {repeats} (range "
        f"{min(walls):.3f}-{max(walls):.3f}): speed-up {statistics.median(ups):.0f}x "
        f"(target >= 100x)",
        flush=True,
    )


def many(calls: int, talk_s: float, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        config = load_config(bench_config(folder))
        rate = calls / 10.0  # all of them up within 10 s
        spec = scenario(f"sim-{calls}", calls, calls, rate, talk_s, MIXES["halfrec"])
        path = folder / "many.yaml"
        path.write_text(yaml.safe_dump(spec))
        sc = load_scenario(path, {})
        per_cpu, ups, peaks = [], [], []
        for _ in range(repeats):
            sim, wall, cpu = timed(lambda: simulate(sc, config, verify=False))
            report = sim.report()
            assert report["counts"]["calls_failed"] == 0, report["outcomes"]["failed"][:3]
            call_s = report["runner"]["call_s"]
            per_cpu.append(call_s / cpu)
            ups.append(sim.simulated_s / wall)
            peaks.append(max(t["active"] for t in report["timeline"]))
        print(
            f"{calls} calls at once (peak {statistics.median(peaks):.0f} active), "
            f"{call_s:.0f} call-seconds, half recorded: {statistics.median(per_cpu):.0f} "
            f"simulated call-seconds per CPU second (median of {repeats}; range "
            f"{min(per_cpu):.0f}-{max(per_cpu):.0f}), speed-up {statistics.median(ups):.1f}x",
            flush=True,
        )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--calls", type=int, default=1000)
    p.add_argument("--talk-s", type=float, default=30.0)
    p.add_argument("--cpu", type=int, default=0, help="the core to run on")
    args = p.parse_args()
    os.sched_setaffinity(0, {args.cpu})
    consent_mix(args.repeats)
    many(args.calls, args.talk_s, max(1, args.repeats // 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
