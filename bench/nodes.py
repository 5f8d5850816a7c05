"""Nodes benchmark: one node on PostgreSQL against SQLite, and two nodes against one.

Two comparisons, each measured side by side in one run, alternating the two
systems ``--repeats`` times (3) and quoting medians, as in
``bench/capacity.py`` (whose config, scenario and runner this reuses: the
consent flow with bots, half the callers pressing 1 for the recorded line):

1. **PostgreSQL against SQLite**: one ``ivr serve`` pinned to CPU 0 (the
   load runner and PostgreSQL's processes to CPU 1), ``--calls`` callers
   (100), on the SQLite default, then on PostgreSQL (a fresh schema per
   run). Printed: the node's CPU per call-second on each and their ratio
   (target: at most 1.1), PostgreSQL's own CPU per call-second (another
   process, on another machine in production), and frame lateness.
2. **Two nodes against one**: the same load on one node (CPU 0), then split
   over two nodes on PostgreSQL (one on each CPU, half the callers each,
   each node's runner on CPU 1). On a two-core machine a second runner
   would take a node's core, so capacity is compared as CPU per
   call-second: two nodes hold ``2 x (one node's) / (two nodes')`` the calls
   of one, if each has a core to itself (target: at least 1.8).

Run it inside a throwaway PostgreSQL:

    pg_virtualenv -t -o max_connections=200 sh -c \\
        '.venv/bin/python bench/nodes.py --database postgresql:// [--calls 100] [--repeats 3]'

It prints its figures; nothing is written outside a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from capacity import (
    CLK_TCK,
    MIXES,
    ROOT,
    SETTLE_S,
    bench_config,
    cpu_s,
    free_port,
    scenario,
    start_runner,
    stop,
    wait_listening,
)

from ivr.load.metrics import Histogram


@dataclass
class Run:
    nodes_cpu_ms: float  # the nodes' CPU per call-second, all nodes together
    pg_cpu_ms: float  # PostgreSQL's processes' CPU per call-second
    p99: float  # frame lateness at the callers, the whole run after the ramp
    failed: int
    lost: int


def postgres_pids() -> list[int]:
    """Every process named ``postgres`` (the bench's cluster is the only one it expects)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def postgres_cpu_s() -> float:
    total = 0.0
    for pid in postgres_pids():
        try:
            total += cpu_s(pid)
        except (OSError, IndexError):
            continue
    return total


def pin_postgres(cpu: str) -> None:
    """PostgreSQL's processes (and those they fork later) onto ``cpu``."""
    for pid in postgres_pids():
        pin = ["taskset", "-a", "-p", "-c", cpu, str(pid)]
        subprocess.run(pin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def fresh_schema(dsn: str) -> str:
    """A new empty schema's DSN (``search_path`` set), so every run starts from migration 1."""
    import psycopg

    schema = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}")
    joiner = "&" if "?" in dsn else "?"
    return f"{dsn}{joiner}options={quote(f'-csearch_path={schema}')}"


def start_node(
    config: Path, folder: Path, cpu: str, database: str | None, node_id: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    data = folder / f"data-{time.monotonic_ns()}"
    serve = [sys.executable, "-m", "ivr", "serve", "--config", str(config), "--data", str(data),
             "--port", str(port), "--log-level", "WARNING", "--drain-s", "0",
             "--node-id", node_id]  # fmt: skip
    if database:
        serve += ["--database", database]
    proc = subprocess.Popen(["taskset", "-c", cpu, *serve], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
    wait_listening(proc, node_id)
    return proc, f"http://127.0.0.1:{port}"


def run(
    nodes: list[tuple[str, str | None]], calls: int, args: argparse.Namespace, config: Path,
    folder: Path, name: str,
) -> Run:  # fmt: skip
    """``calls`` callers spread evenly over ``nodes`` ((cpu, database) each), one runner a node."""
    share = calls // len(nodes)
    ramp_s = share / args.rate
    talk_s = ramp_s + SETTLE_S + args.window_s + 2.0
    started = [start_node(config, folder, cpu, db, f"n{i}") for i, (cpu, db) in enumerate(nodes)]
    try:
        if any(db for _, db in nodes):
            pin_postgres(args.runner_cpu)
        cpu0 = [cpu_s(p.pid) for p, _ in started]
        pg0 = postgres_cpu_s()
        runners = []
        for i, (_, url) in enumerate(started):
            spec = scenario(f"{name}-{i}", share, share, args.rate, talk_s, MIXES["halfrec"])
            runners.append(start_runner(spec, url, folder, args.runner_cpu))
        for runner, _ in runners:
            try:
                runner.wait(timeout=talk_s + 120)
            except subprocess.TimeoutExpired:
                runner.kill()
                runner.wait()
        node_cpu = sum(cpu_s(p.pid) - c for (p, _), c in zip(started, cpu0, strict=True))
        pg_cpu = postgres_cpu_s() - pg0
    finally:
        for proc, _ in started:
            stop(proc)

    lateness, call_s, failed, lost = Histogram(), 0.0, 0, 0
    for _, report_path in runners:
        report = json.loads(report_path.read_text())
        for t in report["timeline"]:
            if t["t"] >= ramp_s + SETTLE_S:
                lateness.merge(Histogram.from_dict(t["lateness"]))
        call_s += report["runner"]["call_s"] or 0.0
        counts = report["counts"]
        failed += counts["calls_failed"]
        lost += counts["frames_missing"] + counts["frames_unsent"] + counts["frames_dropped"]
    call_s = call_s or 1.0
    return Run(node_cpu * 1000 / call_s, pg_cpu * 1000 / call_s, lateness.percentile(99.0),
               failed, lost)  # fmt: skip


def med(values: list[float]) -> float:
    return float(statistics.median(values))


def line(label: str, runs: list[Run]) -> str:
    return (
        f"  {label:<26} node CPU per call-second {med([r.nodes_cpu_ms for r in runs]):5.2f} ms"
        f"  (runs: {', '.join(f'{r.nodes_cpu_ms:.2f}' for r in runs)})"
        f"  PostgreSQL {med([r.pg_cpu_ms for r in runs]):4.2f} ms"
        f"  lateness p99 {med([r.p99 for r in runs]):5.1f} ms"
        f"  failed {sum(r.failed for r in runs)} lost {sum(r.lost for r in runs)}"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database", required=True, help="a postgresql:// URL (schemas are made in it)")
    p.add_argument("--calls", type=int, default=100, help="callers at once in every run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rate", type=float, default=50.0, help="arrivals per second")
    p.add_argument("--window-s", type=float, default=10.0, help="steady talk after the ramp")
    p.add_argument("--node-cpu", default="0")
    p.add_argument("--other-cpu", default="1", help="the second node's CPU")
    p.add_argument("--runner-cpu", default="1", help="the runners' and PostgreSQL's CPU")
    p.add_argument("--skip", choices=("backends", "nodes"), action="append", default=[])
    args = p.parse_args()
    if shutil.which("taskset") is None:
        print("taskset is needed (util-linux)", file=sys.stderr)
        return 2
    print(
        f"nodes: {args.calls} callers (half recorded), {args.rate:g} arrivals/s, "
        f"{args.window_s:g} s of steady talk, {args.repeats} alternating runs each, "
        f"{os.cpu_count()} CPUs ({CLK_TCK} ticks/s)",
        flush=True,
    )
    folder = Path(tempfile.mkdtemp(prefix="ivr-nodes-bench-"))
    try:
        config = bench_config(folder)
        if "backends" not in args.skip:
            sqlite: list[Run] = []
            pg: list[Run] = []
            for i in range(args.repeats):
                sqlite.append(run([(args.node_cpu, None)], args.calls, args, config, folder,
                                  f"sqlite-{i}"))  # fmt: skip
                pg.append(run([(args.node_cpu, fresh_schema(args.database))], args.calls, args,
                              config, folder, f"pg-{i}"))  # fmt: skip
            print(line("one node, SQLite", sqlite))
            print(line("one node, PostgreSQL", pg))
            ratio = med([r.nodes_cpu_ms for r in pg]) / med([r.nodes_cpu_ms for r in sqlite])
            print(f"  PostgreSQL / SQLite, node CPU per call-second: {ratio:.2f} (target <= 1.1)")
        if "nodes" not in args.skip:
            one: list[Run] = []
            two: list[Run] = []
            for i in range(args.repeats):
                db = fresh_schema(args.database)
                one.append(run([(args.node_cpu, db)], args.calls, args, config, folder,
                               f"one-{i}"))  # fmt: skip
                db = fresh_schema(args.database)
                two.append(run([(args.node_cpu, db), (args.other_cpu, db)], args.calls, args,
                               config, folder, f"two-{i}"))  # fmt: skip
            print(line("one node, PostgreSQL", one))
            print(line("two nodes, PostgreSQL", two))
            scale = 2 * med([r.nodes_cpu_ms for r in one]) / med([r.nodes_cpu_ms for r in two])
            print(
                f"  two nodes hold {scale:.2f}x the calls of one, at equal CPU per call-second "
                "and a core each (target >= 1.8)"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
