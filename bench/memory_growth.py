"""What a fresh server's memory fills with: tracemalloc snapshots diffed across calls.

Starts ``ivr serve`` (``bench/capacity.py``'s consent flow, half the calls
recorded) under :mod:`tracemalloc`, places ``--batches`` batches of
``--calls`` short calls with the load runner, and after each batch has the
server write a snapshot (on ``SIGUSR1``) and reads its RSS. It then prints
the RSS after each batch, how much of it Python allocated (traced), and the
lines whose allocations grew most from the first batch to the last, each
with the stack that made them, so that what fills up can be found and
bounded. Tracing slows the server several times over: run few calls at a
time (the default is 5 batches of 300 at 20 a second).

    python bench/memory_growth.py [--calls 300] [--batches 5] [--top 12] [--frames 6]
    python bench/memory_growth.py --no-trace [--calls 300] [--batches 6]

``--no-trace`` runs the server as ``ivr serve`` runs, untraced and at full
speed, and prints only its RSS after each batch: where a fresh server's
memory goes up, and whether it then stays flat.

Nothing is written outside a temporary folder.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from capacity import (  # noqa: E402
    MIXES,
    bench_config,
    free_port,
    scenario,
    start_runner,
    start_server,
    stop,
    wait_listening,
)
from service_levels import rss_kib  # noqa: E402


def serve(argv: list[str], frames: int, snapshots: Path, collect: bool) -> int:
    """In the server process: trace, write a snapshot on each SIGUSR1, then serve."""
    tracemalloc.start(frames)
    count = 0

    def dump(signum: int, frame: object) -> None:
        nonlocal count
        count += 1
        before = tracemalloc.get_traced_memory()[0]
        kinds: Counter[str] = Counter()
        found = 0
        if collect:
            # What the cycles are made of: keep the garbage for a moment, count its types.
            gc.set_debug(gc.DEBUG_SAVEALL)
            found = gc.collect()
            gc.set_debug(0)
            kinds.update(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage)
            gc.garbage.clear()
            gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.take_snapshot().dump(str(snapshots / f"{count:03d}.snap"))
        ours = [(k, n) for k, n in kinds.most_common() if k.startswith(("ivr.", "aiohttp."))]
        note = {
            "unreachable": found,
            "freed": before - after,
            "kinds": kinds.most_common(8),
            "ours": ours[:12],
        }
        (snapshots / f"{count:03d}.json").write_text(json.dumps(note))
        (snapshots / f"{count:03d}.done").touch()

    signal.signal(signal.SIGUSR1, dump)
    from ivr.cli import main

    return main(argv)


def start(
    config: Path, folder: Path, frames: int, snapshots: Path, collect: bool
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [
        sys.executable,
        __file__,
        "--serve",
        "--frames",
        str(frames),
        "--snapshots",
        str(snapshots),
    ]
    cmd += ["--", "serve", "--config", str(config), "--data", str(folder / "data")]
    cmd += ["--port", str(port), "--log-level", "WARNING"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    wait_listening(proc, "the traced server", timeout_s=120)  # tracing slows start-up
    return proc, f"http://127.0.0.1:{port}"


def snapshot(proc: subprocess.Popen[bytes], snapshots: Path, index: int) -> tracemalloc.Snapshot:
    proc.send_signal(signal.SIGUSR1)
    done = snapshots / f"{index:03d}.done"
    deadline = time.monotonic() + 120
    while not done.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the server wrote no snapshot")
        time.sleep(0.2)
    note = json.loads((snapshots / f"{index:03d}.json").read_text())
    if note["unreachable"]:
        print(
            f"  a full collection found {note['unreachable']} unreachable objects in reference "
            f"cycles, {note['freed'] / 1024:.0f} KiB; most: "
            + ", ".join(f"{kind} {n}" for kind, n in note["kinds"])
            + "; of ivr and aiohttp: "
            + (", ".join(f"{kind} {n}" for kind, n in note["ours"]) or "none")
        )
    return tracemalloc.Snapshot.load(str(snapshots / f"{index:03d}.snap"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=300, help="calls per batch")
    p.add_argument("--batches", type=int, default=5)
    p.add_argument("--rate", type=float, default=20.0, help="arrivals per second")
    p.add_argument("--top", type=int, default=12, help="lines of growth to print")
    p.add_argument("--frames", type=int, default=6, help="stack frames traced per allocation")
    p.add_argument(
        "--collect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run a full collection before each snapshot, and say what it freed",
    )
    p.add_argument(
        "--trace",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="trace allocations (--no-trace: the RSS after each batch only, at full speed)",
    )
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--snapshots", type=Path, help=argparse.SUPPRESS)
    p.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        return serve(args.rest, args.frames, args.snapshots, args.collect)
    folder = Path(tempfile.mkdtemp(prefix="ivr-memory-"))
    try:
        config = bench_config(folder)
        if not args.trace:
            return untraced(args, config, folder)
        snapshots = folder / "snapshots"
        snapshots.mkdir()
        proc, url = start(config, folder, args.frames, snapshots, args.collect)
        try:
            taken = [snapshot(proc, snapshots, 1)]
            rss = [rss_kib(proc.pid)]
            print(f"fresh server: RSS {rss[0] / 1024:.1f} MiB, traced {traced(taken[0]):.1f} MiB")
            for index in range(1, args.batches + 1):
                failed = batch(url, folder, index, args)
                rss.append(rss_kib(proc.pid))  # before the snapshot's collection
                print(
                    f"after {index * args.calls:>5} calls: RSS {rss[-1] / 1024:.1f} MiB "
                    f"(+{(rss[-1] - rss[0]) / 1024:.1f}), {failed} failed in the batch",
                    flush=True,
                )
                taken.append(snapshot(proc, snapshots, index + 1))
                print(f"  traced after the collection {traced(taken[-1]):.1f} MiB", flush=True)
        finally:
            stop(proc)
        for name, first in (("fresh", taken[0]), ("first batch", taken[1])):
            print(f"\ngrowth from {name} to the last batch, by line (top {args.top}):")
            stats = taken[-1].compare_to(first, "lineno")
            for stat in stats[: args.top]:
                frame = stat.traceback[0]
                where = (
                    os.path.relpath(frame.filename, ROOT)
                    if frame.filename.startswith(str(ROOT))
                    else frame.filename
                )
                size, count = stat.size_diff / 1024, stat.count_diff
                print(f"  {size:+9.1f} KiB {count:+7d} blocks  {where}:{frame.lineno}")
        print(f"\nstacks of the largest growth since the first batch (top {min(5, args.top)}):")
        for stat in taken[-1].compare_to(taken[1], "traceback")[: min(5, args.top)]:
            print(f"  {stat.size_diff / 1024:+.1f} KiB in {stat.count_diff:+d} blocks:")
            for line in stat.traceback.format()[-2 * args.frames :]:
                print(f"      {line}")
        return 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def batch(url: str, folder: Path, index: int, args: argparse.Namespace) -> int:
    """One batch of short calls, half recorded; how many failed."""
    spec = scenario(f"memory-{index}", args.calls, 100, args.rate, 3.0, MIXES["halfrec"])
    runner, report = start_runner(spec, url, folder, "0-1")
    runner.wait(timeout=args.calls / args.rate + 300)
    failed: int = json.loads(report.read_text())["counts"]["calls_failed"]
    return failed


def untraced(args: argparse.Namespace, config: Path, folder: Path) -> int:
    """``--no-trace``: the RSS of a plain ``ivr serve`` after each batch."""
    proc, url = start_server("halfrec", config, folder, "0-1")
    try:
        rss = [rss_kib(proc.pid)]
        print(f"fresh server: RSS {rss[0] / 1024:.1f} MiB", flush=True)
        for index in range(1, args.batches + 1):
            failed = batch(url, folder, index, args)
            rss.append(rss_kib(proc.pid))
            print(
                f"after {index * args.calls:>5} calls: RSS {rss[-1] / 1024:.1f} MiB "
                f"(+{(rss[-1] - rss[0]) / 1024:.1f} since fresh, "
                f"{(rss[-1] / rss[1] - 1) * 100:+.1f}% since the first batch), "
                f"{failed} failed in the batch",
                flush=True,
            )
    finally:
        stop(proc)
    return 0


def traced(snap: tracemalloc.Snapshot) -> float:
    return sum(stat.size for stat in snap.statistics("filename")) / (1 << 20)


if __name__ == "__main__":
    sys.exit(main())
