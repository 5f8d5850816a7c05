"""Capacity benchmark: the bare baseline B against the softswitch, side by side, same run.

Measures, on loopback, with the server pinned to one CPU and the load runner
to another (``taskset``):

* **B**: the largest number of calls at which a bare aiohttp WebSocket server
  (``bench/baseline_server.py``: one 320-byte frame per call every 20 ms, a
  task per call) still delivers its frames with p99 lateness under 10 ms,
  p99.9 under 20 ms and none over 60 ms, and loses none;
* the same for the softswitch (``ivr serve``) running the consent flow with
  bots, **without recording** (every caller presses 2) and **with half the
  calls recorded** (half press 1), each as a ratio to B.

Each trial starts a fresh server, brings ``n`` callers in at ``--rate`` calls
a second, lets them settle, then judges frame lateness over a steady window
of ``--window-s`` seconds in which all ``n`` are connected and talking
(the runner's per-second histograms, from its report.json). The largest
passing ``n`` is searched for by doubling and bisection until the bracket is
within ``--precision`` (5%) of its lower end, each point run ``--repeats``
times (3) and its median kept (the majority's verdict, the median figures),
within a time budget (``--budget-s``), so a run is bounded. Before the
search, B and the softswitch run in turn at fixed loads (``--fixed``: 100,
200 and 300 calls) and their server CPU per call-second is compared. The
runner's CPU per call-second is printed too: it must cost under half of B
per call, so it never limits the measurement.

    python bench/capacity.py [--budget-s 2700] [--repeats 3] [--precision 0.05]
                             [--fixed 100,200,300] [--server-cpu 0] [--runner-cpu 1]
    python bench/capacity.py --trial B:200 --trial norec:200 --trial norec@asyncio:200

``--trial SYSTEM[@LOOP][/gcN]:N`` runs just those trials at fixed loads, in
order (``@asyncio`` or ``@uvloop``: the softswitch on that event loop, as
``ivr serve --loop``; by default it runs as ``ivr serve`` does, on uvloop when
installed; ``/gc5000``: with a generation-0 threshold of 5000 instead of
CPython's 700), so that two settings are measured side by side in one
sitting. Every softswitch trial runs under ``bench/gc_serve.py`` and prints
its garbage collections over the steady window (how often, how long).

It prints its figures; nothing is written outside a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr.load.metrics import Histogram  # noqa: E402
from media.wavfile import write_mono  # noqa: E402

P99_MS, P999_MS, MAX_MS = 10.0, 20.0, 60.0
LOOPS = ("", "uvloop", "asyncio")  # after "@" in a --trial: as `ivr serve --loop` (none: auto)
SETTLE_S = 2.5  # after the last arrival: the flow (1 s notice), the bot's answer (0.2 s)
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Trial:
    system: str
    calls: int
    passed: bool
    p99: float
    p999: float
    max: float
    lost: int
    failed: int
    server_cpu_ms: float  # per call-second
    runner_cpu_ms: float  # per call-second
    runner_p99: float
    seconds: float
    setup_p99: float | None = None
    dtmf_p99: float | None = None
    why: str = ""
    runs: int = 1
    gc: str = ""

    def line(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        return (
            f"  {self.system:<14} n={self.calls:<5} {verdict}  lateness p99 {self.p99:6.1f} "
            f"p99.9 {self.p999:6.1f} max {self.max:6.1f} ms  lost {self.lost:<4} failed "
            f"{self.failed:<3} | CPU per call-second: server {self.server_cpu_ms:5.2f} ms, "
            f"runner {self.runner_cpu_ms:5.2f} ms (its own p99 lateness {self.runner_p99:.1f} ms)"
            f"  [{self.seconds:.0f} s{f', median of {self.runs}' if self.runs > 1 else ''}]"
            f"{'  ' + self.why if self.why else ''}"
            + (f"\n{'':13}set-up p99 {self.setup_p99:.1f} ms" if self.setup_p99 is not None else "")
            + (
                f", DTMF-to-response p99 {self.dtmf_p99:.1f} ms"
                if self.dtmf_p99 is not None
                else ""
            )
            + (f"\n{'':13}{self.gc}" if self.gc else "")
        )


def write_tone(path: Path, hz: float, ms: int, rate: int = 8000) -> None:
    t = np.arange(rate * ms // 1000) / rate
    write_mono(path, (6000 * np.sin(2 * np.pi * hz * t)).astype(np.int16), rate)


def bench_config(folder: Path) -> Path:
    """A consent flow with short prompts and thousands of bots: calls reach a line in ~1.3 s."""
    prompts = folder / "prompts"
    prompts.mkdir()
    for name, hz, ms in (
        ("notice", 440, 1000),
        ("menu", 550, 1000),
        ("hold", 330, 2000),
        ("greeting", 660, 1000),
        ("bye", 220, 500),
    ):
        write_tone(prompts / f"{name}.wav", hz, ms)
    config = {
        "prompts_dir": str(prompts),
        "bots": {"answer_delay_s": 0.2, "greeting": "greeting", "max_call_s": 3600},
        "limits": {"max_calls": 20000},
        "numbers": {
            "+15550100": {
                "name": "Bench",
                "flow": "consent",
                "recording": True,
                "transcription": False,
                "consent_mode": "opt_in",
            }
        },
        "teams": {"support": {"bots": 5000}},
        "flows": {
            "consent": {
                "start": "notice",
                "nodes": {
                    "notice": {
                        "type": "message",
                        "prompt": "notice",
                        "notice": ["recording"],
                        "next": "consent",
                    },
                    "consent": {
                        "type": "menu",
                        "prompt": "menu",
                        "options": {
                            "1": {"next": "recorded", "consent": "granted"},
                            "2": {"next": "private", "consent": "refused"},
                        },
                        "timeout_s": 5,
                        "retries": 1,
                        "on_timeout": "private",
                    },
                    "recorded": {
                        "type": "ring",
                        "team": "support",
                        "record": True,
                        "timeout_s": 30,
                        "on_no_answer": "bye",
                    },
                    "private": {
                        "type": "ring",
                        "team": "support",
                        "record": False,
                        "timeout_s": 30,
                        "on_no_answer": "bye",
                    },
                    "bye": {"type": "hangup", "prompt": "bye"},
                },
            }
        },
    }
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


MIXES: dict[str, dict[str, Any]] = {
    "B": {"hold": 1},
    "norec": {"refuse": {"weight": 1, "press_after_s": 0}},
    "halfrec": {
        "consent": {"weight": 1, "press_after_s": 0},
        "refuse": {"weight": 1, "press_after_s": 0},
    },
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def parse_system(system: str) -> tuple[str, str, int]:
    """``norec@asyncio/gc5000`` as (mix, loop, generation-0 threshold); '' and 0 when not given."""
    rest, _, gen0 = system.partition("/gc")
    base, _, loop = rest.partition("@")
    if base not in MIXES or loop not in LOOPS or not (gen0 == "" or gen0.isdigit()):
        raise ValueError(
            f"{system!r}: expected one of {sorted(MIXES)}, then @uvloop or @asyncio, "
            "then /gcN (a generation-0 threshold), each optional but the first"
        )
    if base == "B" and (loop or gen0):
        raise ValueError(f"{system!r}: a loop or a GC threshold is for the softswitch only")
    return base, loop, int(gen0 or 0)


def start_server(
    system: str, config: Path, folder: Path, cpu: str, gc_stats: Path | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """B or the softswitch on ``cpu``; with ``gc_stats``, the softswitch notes its collections.

    The softswitch then runs under ``bench/gc_serve.py`` (``ivr serve`` with
    a hook that writes every collection's time and pause to ``gc_stats`` as
    it stops), with the system's ``/gcN`` threshold if it has one.
    """
    port = free_port()
    base, loop, gen0 = parse_system(system)
    if base == "B":
        cmd = [sys.executable, str(ROOT / "bench" / "baseline_server.py"), "--port", str(port)]
    else:
        data = folder / f"data-{time.monotonic_ns()}"
        serve = ["serve", "--config", str(config), "--data", str(data)]
        serve += ["--port", str(port), "--log-level", "WARNING", "--drain-s", "0"]
        if loop:
            serve += ["--loop", loop]
        if gc_stats is not None or gen0:
            stats = gc_stats or folder / f"gc-{time.monotonic_ns()}.json"
            wrap = [str(ROOT / "bench" / "gc_serve.py"), "--stats", str(stats)]
            cmd = [sys.executable, *wrap, "--gen0", str(gen0), "--", *serve]
        else:
            cmd = [sys.executable, "-m", "ivr", *serve]
    proc = subprocess.Popen(
        ["taskset", "-c", cpu, *cmd],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    wait_listening(proc, f"{system} server")
    return proc, f"http://127.0.0.1:{port}"


def wait_listening(proc: subprocess.Popen[bytes], what: str, timeout_s: float = 60.0) -> None:
    """Read the server's output until its ``listening on`` line; RuntimeError if it never comes."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{what} did not start")
        if line.startswith(b"listening on"):
            return
    raise RuntimeError(f"{what} did not start in time")


def profiler(
    args: argparse.Namespace, pid: int, delay_s: float, name: str
) -> subprocess.Popen[bytes] | None:
    """With ``--profile DIR``: py-spy samples the server ``pid`` over the steady window.

    It starts ``delay_s`` from now (after the ramp), samples for ``--window-s``
    without pausing the server (``--nonblocking``), on the runner's CPU, and
    writes ``DIR/NAME.svg`` (a flame graph) or, with ``--profile-format raw``,
    collapsed stacks (``DIR/NAME.txt``). py-spy is the ``bench`` extra.
    """
    if args.profile is None:
        return None
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("--profile needs py-spy: pip install -e '.[bench]'")
    args.profile.mkdir(parents=True, exist_ok=True)
    raw = args.profile_format == "raw"
    out = args.profile / f"{name}.{'txt' if raw else 'svg'}"
    record = [spy, "record", "--pid", str(pid), "--duration", str(int(args.window_s))]
    record += ["--rate", "250", "--nonblocking", "--format", args.profile_format, "-o", str(out)]
    script = f'sleep {delay_s:.1f}; exec "$@"'
    return subprocess.Popen(
        ["taskset", "-c", args.runner_cpu, "sh", "-c", script, "sh", *record],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def add_profile_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="profile the server with py-spy over each trial's steady window; write there",
    )
    p.add_argument("--profile-format", choices=("flamegraph", "raw"), default="flamegraph")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def scenario(
    name: str, calls: int, concurrency: int, rate: float, talk_s: float, mix: Any
) -> dict[str, Any]:
    """A runner scenario for the bench config's number: no verification, callers in-process."""
    return {
        "name": name,
        "to": "+15550100",
        "calls": calls,
        "concurrency": concurrency,
        "arrival": {"rate_cps": rate},
        "talk": {"seconds": round(talk_s, 2), "tail_ms": 0},
        "mix": mix,
        "seed": 1,
        "processes": 0,
        "verify": False,
        "call_timeout_s": talk_s + 60,
    }


def start_runner(
    spec: dict[str, Any], url: str, folder: Path, cpu: str
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start ``ivr load`` on ``spec`` against ``url``, pinned to ``cpu``; its process and report."""
    path = folder / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    report = folder / f"report-{spec['name']}"
    cmd = ["taskset", "-c", cpu, sys.executable, "-m", "ivr.load.cli", str(path), "--url", url]
    cmd += ["--no-verify", "--quiet", "--report", str(report)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, report / "report.json"


def trial(system: str, n: int, args: argparse.Namespace, config: Path, folder: Path) -> Trial:
    t0 = time.monotonic()
    ramp_s = n / args.rate
    talk_s = ramp_s + SETTLE_S + args.window_s + 2.0
    base = parse_system(system)[0]
    mix = MIXES[base]
    label = system.replace("@", "-").replace("/", "-")
    spec = scenario(f"capacity-{label}-{n}", n, n, args.rate, talk_s, mix)
    gc_stats = None if base == "B" else folder / f"gc-{label}-{time.monotonic_ns()}.json"
    proc, url = start_server(system, config, folder, args.server_cpu, gc_stats)
    spy = None
    try:
        cpu0 = cpu_s(proc.pid)
        began = time.time()
        runner, report_path = start_runner(spec, url, folder, args.runner_cpu)
        spy = profiler(args, proc.pid, ramp_s + SETTLE_S, f"{label}-{n}")
        try:
            runner.wait(timeout=talk_s + 120)
        except subprocess.TimeoutExpired:
            runner.kill()
            runner.wait()
        server_cpu = cpu_s(proc.pid) - cpu0
    finally:
        stop(proc)
        if spy is not None:
            spy.wait(timeout=30)
    report = json.loads(report_path.read_text())
    window = Histogram()
    lo, hi = ramp_s + SETTLE_S, ramp_s + SETTLE_S + args.window_s
    gc_line = gc_summary(gc_stats, began + lo, began + hi) if gc_stats is not None else ""
    for t in report["timeline"]:
        if lo <= t["t"] < hi:
            window.merge(Histogram.from_dict(t["lateness"]))
    counts = report["counts"]
    lost = counts["frames_missing"] + counts["frames_unsent"] + counts["frames_dropped"]
    failed = counts["calls_failed"]
    call_s = report["runner"]["call_s"] or 1.0
    p99, p999 = window.percentile(99.0), window.percentile(99.9)
    why = []
    if window.n < n * 50 * args.window_s * 0.9:
        why.append(f"only {window.n} frames in the window")
    if failed:
        why.append(f"{failed} calls failed")
    passed = not why and p99 < P99_MS and p999 < P999_MS and window.max <= MAX_MS and lost == 0
    return Trial(
        system=system,
        calls=n,
        passed=passed,
        p99=p99,
        p999=p999,
        max=window.max,
        lost=lost,
        failed=failed,
        server_cpu_ms=server_cpu * 1000 / call_s,
        runner_cpu_ms=report["runner"]["cpu_ms_per_call_s"] or 0.0,
        runner_p99=report["runner"]["lateness"]["p99"] or 0.0,
        seconds=time.monotonic() - t0,
        setup_p99=report["metrics"]["setup_answered_ms"]["p99"],
        dtmf_p99=report["metrics"]["dtmf_response_ms"]["p99"],
        why="; ".join(why),
        gc=gc_line,
    )


def gc_summary(stats: Path, start: float, end: float) -> str:
    """The server's collections over the steady window: how often, and how long they paused."""
    if not stats.exists():
        return "no GC figures (the server did not stop cleanly)"
    noted = json.loads(stats.read_text())
    seconds = max(end - start, 1e-9)
    parts = []
    for gen in (0, 1, 2):
        pauses = [p * 1000 for t, g, p in noted["collections"] if g == gen and start <= t < end]
        if pauses:
            parts.append(
                f"gen{gen} {len(pauses) / seconds:.1f}/s, pause median "
                f"{statistics.median(pauses):.2f} max {max(pauses):.2f} ms"
            )
        else:
            parts.append(f"gen{gen} none")
    whole = []
    for gen in (0, 1, 2):
        pauses = [p * 1000 for _, g, p in noted["collections"] if g == gen]
        whole.append(f"gen{gen} {len(pauses)}" + (f" (max {max(pauses):.1f} ms)" if pauses else ""))
    return (
        f"GC (threshold {noted['threshold'][0]}) over the window: "
        + "; ".join(parts)
        + f"\n{'':13}over the whole trial (start-up and ramp too): "
        + ", ".join(whole)
    )


def repeated(system: str, n: int, args: argparse.Namespace, config: Path, folder: Path) -> Trial:
    """``trial`` run ``args.repeats`` times (one by default), its median kept.

    The verdict is the majority's; every figure is the median of the runs'.
    """
    runs = [trial(system, n, args, config, folder) for _ in range(getattr(args, "repeats", 1))]
    return combine(system, n, runs)


def combine(system: str, n: int, runs: list[Trial]) -> Trial:
    """One trial from several runs of it: the majority's verdict, each figure's median."""
    if len(runs) == 1:
        return runs[0]

    def med(values: list[float]) -> float:
        return float(statistics.median(values))

    def med_opt(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return med(known) if known else None

    failing = [t for t in runs if not t.passed]
    why = "; ".join(sorted({t.why for t in failing if t.why}))
    return Trial(
        system=system,
        calls=n,
        passed=len(failing) * 2 < len(runs),
        p99=med([t.p99 for t in runs]),
        p999=med([t.p999 for t in runs]),
        max=med([t.max for t in runs]),
        lost=round(med([t.lost for t in runs])),
        failed=round(med([t.failed for t in runs])),
        server_cpu_ms=med([t.server_cpu_ms for t in runs]),
        runner_cpu_ms=med([t.runner_cpu_ms for t in runs]),
        runner_p99=med([t.runner_p99 for t in runs]),
        seconds=sum(t.seconds for t in runs),
        setup_p99=med_opt([t.setup_p99 for t in runs]),
        dtmf_p99=med_opt([t.dtmf_p99 for t in runs]),
        why=f"{len(failing)} of {len(runs)} runs failed" + (f": {why}" if why else "")
        if failing
        else "",
        runs=len(runs),
        gc=runs[len(runs) // 2].gc,  # the middle run's, as an example
    )


def search(
    system: str,
    start: int,
    max_trials: int,
    deadline: float,
    args: argparse.Namespace,
    config: Path,
    folder: Path,
    trials: list[Trial],
) -> tuple[int, int | None]:
    """(largest passing n, smallest failing n or None), by doubling then bisection.

    Each point is ``repeated`` (``args.repeats`` runs, the median kept); the
    search stops once the bracket is within ``args.precision`` of its lower
    end (10% if the caller's arguments do not say), at least 5 calls.
    """
    lo, hi = 0, None
    n = max(10, start)
    repeats = getattr(args, "repeats", 1)
    precision = getattr(args, "precision", 0.1)
    for _ in range(max_trials):
        if time.monotonic() + (n / args.rate + args.window_s + 15) * repeats > deadline:
            print(f"  {system}: time budget spent", flush=True)
            break
        t = repeated(system, n, args, config, folder)
        trials.append(t)
        print(t.line(), flush=True)
        if t.passed:
            lo = n
        else:
            hi = n
        if hi is not None and hi - lo <= max(5, int(lo * precision)):
            break
        n = n * 2 if hi is None else (lo + hi) // 2
        if lo == 0 and hi is not None:
            n = max(10, hi // 2)
    return lo, hi


def fixed_loads(
    args: argparse.Namespace, config: Path, folder: Path
) -> dict[int, tuple[Trial, Trial]]:
    """B and the softswitch (no recording) at each of ``--fixed``'s loads, in turn.

    The runs alternate B and the softswitch, so that the machine's drift
    falls on both alike; each figure is the median of ``--repeats`` runs.
    """
    loads = [int(n) for n in args.fixed.split(",") if n.strip()]
    results: dict[int, tuple[Trial, Trial]] = {}
    for n in loads:
        runs: dict[str, list[Trial]] = {"B": [], "norec": []}
        for _ in range(args.repeats):
            for system in runs:
                runs[system].append(trial(system, n, args, config, folder))
        b, softswitch = (combine(system, n, done) for system, done in runs.items())
        print(b.line(), softswitch.line(), sep="\n", flush=True)
        results[n] = (b, softswitch)
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget-s", type=float, default=2700.0, help="stop searching after this")
    p.add_argument("--repeats", type=int, default=3, help="runs per point; the median is kept")
    p.add_argument("--precision", type=float, default=0.05, help="stop bisecting within this share")
    p.add_argument(
        "--fixed",
        default="100,200,300",
        help="loads at which B's and the softswitch's CPU per call-second are compared "
        "before the search ('' for none)",
    )
    p.add_argument("--server-cpu", default="0")
    p.add_argument("--runner-cpu", default="1")
    p.add_argument("--rate", type=float, default=50.0, help="arrivals per second in each trial")
    p.add_argument("--window-s", type=float, default=8.0, help="steady window judged per trial")
    p.add_argument("--start", type=int, default=200, help="first n tried for B")
    p.add_argument(
        "--trial",
        action="append",
        metavar="SYSTEM:N",
        help="run just these trials (B, norec or halfrec with n calls) and print them",
    )
    add_profile_options(p)
    args = p.parse_args()
    if shutil.which("taskset") is None:
        print("taskset is needed (util-linux)", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="ivr-capacity-"))
    try:
        config = bench_config(folder)
        if args.trial:
            for spec in args.trial:
                system, _, n = spec.partition(":")
                try:
                    parse_system(system)
                    if not n.isdigit():
                        raise ValueError(f"{n!r} is not a number of calls")
                except ValueError as err:
                    print(f"--trial {spec}: {err}", file=sys.stderr)
                    return 2
                t = repeated(system, int(n), args, config, folder)
                print(t.line(), flush=True)
                print(
                    f"    runner/server CPU per call-second {t.runner_cpu_ms / t.server_cpu_ms:.2f}"
                    f"; set-up p99 {t.setup_p99} ms, DTMF-to-response p99 {t.dtmf_p99} ms",
                    flush=True,
                )
            return 0
        start = time.monotonic()
        deadline = start + args.budget_s
        trials: list[Trial] = []
        print(
            f"capacity: server on CPU {args.server_cpu}, runner on CPU {args.runner_cpu}, "
            f"{args.rate:g} arrivals/s, {args.window_s:g} s steady window; thresholds "
            f"p99 < {P99_MS:g} ms, p99.9 < {P999_MS:g} ms, max <= {MAX_MS:g} ms, no frame lost",
            flush=True,
        )
        fixed = fixed_loads(args, config, folder)
        share = (deadline - time.monotonic()) / 3
        b, b_fail = search(
            "B", args.start, 8, time.monotonic() + share * 1.2, args, config, folder, trials
        )
        results: dict[str, tuple[int, int | None]] = {"B": (b, b_fail)}
        first = max(b, args.start // 2)
        left = deadline - time.monotonic()
        results["norec"] = search(
            "norec", first, 7, time.monotonic() + left / 2, args, config, folder, trials
        )
        results["halfrec"] = search(
            "halfrec", int(first * 0.9), 7, deadline, args, config, folder, trials
        )
        print()
        print(f"  {'system':<28}{'capacity':>10}{'ratio to B':>12}   bracket")
        names = {
            "B": "B (bare aiohttp, task/call)",
            "norec": "softswitch, no recording",
            "halfrec": "softswitch, half recorded",
        }
        for system, (lo, hi) in results.items():
            ratio = f"{lo / b:.2f}" if b else "-"
            bracket = (
                f"passes at {lo}, fails at {hi}" if hi else f"passes at {lo} (no failure seen)"
            )
            print(f"  {names[system]:<28}{lo:>10}{ratio:>12}   {bracket}")
        b_trials = [t for t in trials if t.system == "B" and t.passed]
        if b_trials:
            top = max(b_trials, key=lambda t: t.calls)
            print(
                f"\n  runner CPU per call-second {top.runner_cpu_ms:.2f} ms vs B's "
                f"{top.server_cpu_ms:.2f} ms at n={top.calls}: ratio "
                f"{top.runner_cpu_ms / top.server_cpu_ms:.2f} (target < 0.5)"
            )
        # Every softswitch caller presses a digit (barge-in) on arrival, at --rate
        # arrivals a second onto the calls already up: each trial measures set-up and
        # DTMF-to-response under that load. Quote the trial nearest 0.8 x B.
        ss = [t for t in trials if t.system != "B" and t.passed and t.dtmf_p99 is not None]
        if b and ss:
            near = min(ss, key=lambda t: abs(t.calls - 0.8 * b))
            print(
                f"  at n={near.calls} ({near.calls / b:.2f} x B, {near.system}): DTMF-to-response "
                f"p99 {near.dtmf_p99:.1f} ms (target <= 30), set-up p99 {near.setup_p99:.1f} ms "
                f"with {args.rate:g} new calls/s (target <= 100)"
            )
        if fixed:
            print("\n  server CPU per call-second at fixed loads (medians, same run):")
            for n, (tb, ts) in fixed.items():
                print(
                    f"    n={n:<4} B {tb.server_cpu_ms:5.2f} ms ({'pass' if tb.passed else 'FAIL'})"
                    f"  softswitch {ts.server_cpu_ms:5.2f} ms ({'pass' if ts.passed else 'FAIL'})"
                    f"  ratio {ts.server_cpu_ms / tb.server_cpu_ms:.2f}"
                    + ("  (target <= 0.5)" if n == 200 else "")
                )
        print(f"  total {time.monotonic() - start:.0f} s")
        return 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
