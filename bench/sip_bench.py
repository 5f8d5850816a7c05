"""SIP benchmark: calls held over SIP/RTP against WebSocket calls, same server, same run.

Measures, on loopback, with the server pinned to one CPU and the callers to
another (``taskset``), on ``bench/capacity.py``'s consent flow and bots
(every caller refuses the recording: no recording, as its ``norec``):

* **WS**: the largest number of WebSocket calls (``ivr load``, as
  ``capacity.py`` runs it) the server holds with frame lateness p99 under
  10 ms, p99.9 under 20 ms, none over 60 ms and none lost;
* **SIP**: the same for SIP calls placed by SIPp (``uac_rtpstream.xml``:
  PCMU only, 20 ms packets; its audio holds an in-band "2" while the menu
  plays, then speech-like noise, streamed for the whole call). The lateness
  is that of the RTP the server sends, taken as ``ivr load`` takes it for
  WebSocket frames (arrival against the stream's own 20 ms schedule,
  anchored at its earliest packet), from the RTP timestamps and the kernel's
  receive times, by a raw packet socket on the loopback interface (so it
  needs root, or CAP_NET_RAW); a packet missing from a stream's timestamp
  sequence is lost;
* the **ratio** SIP / WS;
* **set-up**: SIPp at 20 calls a second onto half the SIP capacity (calls
  long enough that half the capacity is up at once), INVITE to 200 OK
  percentiles from SIPp's own response times (``-trace_rtt``, whole
  milliseconds).

In a SIP trial's line, "runner" is SIPp's CPU per call-second (sampled
from /proc while it runs) and "its own p99 lateness" is not measured (0).

Each capacity is searched by doubling and bisection (``capacity.search``)
within a share of ``--budget-s`` (default 6 minutes), so a run is bounded;
the figures are brackets, not exact capacities. On a small shared machine
they are noisy: run it twice before believing a ratio.

    python bench/sip_bench.py [--budget-s 360] [--server-cpu 0] [--runner-cpu 1]
    python bench/sip_bench.py --trial ws:100 --trial sip:100 --trial sip@asyncio:100

``--trial`` runs fixed loads side by side instead of the search. The bench
process itself (with its sniffer thread) is pinned to the callers' CPU.

It prints its figures; nothing is written outside a temporary folder.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import capacity  # noqa: E402
from capacity import LOOPS, MAX_MS, P99_MS, P999_MS, SETTLE_S, Trial  # noqa: E402

from ivr.load.metrics import Histogram  # noqa: E402
from media.dtmf import generate_sequence  # noqa: E402
from media.g711 import ulaw_encode  # noqa: E402

SCENARIO = ROOT / "tests" / "sipkit" / "scenarios" / "uac_rtpstream.xml"
ETH_P_ALL, PACKET_OUTGOING, SO_TIMESTAMPNS = 0x0003, 4, 35
RTP_LOW = 20000


def ulaw_stream(seconds: float, folder: Path) -> None:
    """``caller.ulaw`` for uac_rtpstream: 1.2 s of quiet, a "2" (the menu plays from 1 s),
    then noise in syllable-like bursts at about -20 dBm0, for ``seconds`` in all."""
    rng = np.random.default_rng(7)
    rate = 8000
    total = int(seconds * rate)
    quiet = np.zeros(int(1.2 * rate), np.int16)
    press = generate_sequence("2", 120, 200, rate)
    rest = max(0, total - len(quiet) - len(press))
    noise = rng.normal(0, 700, rest)
    envelope = (np.sin(2 * np.pi * 4 * np.arange(rest) / rate) > -0.3).astype(float)
    pcm = np.concatenate([quiet, press, (noise * envelope).clip(-8000, 8000).astype(np.int16)])
    (folder / "caller.ulaw").write_bytes(ulaw_encode(pcm.astype(np.int16)).tobytes())


def sip_config(folder: Path) -> Path:
    """capacity.py's config, with SIP on and room for thousands of calls."""
    path = capacity.bench_config(folder)
    config = yaml.safe_load(path.read_text())
    config["sip"] = {"max_calls": 20000, "media_timeout_s": 0}
    out = folder / "sip.yaml"
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out


def free_sip_port() -> int:
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = int(u.getsockname()[1])
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free on UDP and TCP")


def start_sip_server(
    config: Path, folder: Path, cpu: str, calls: int, loop: str | None = None
) -> tuple[subprocess.Popen[bytes], int, int, str]:
    port, sip_port = capacity.free_port(), free_sip_port()
    data = folder / f"data-{time.monotonic_ns()}"
    high = RTP_LOW + 2 * (calls + 50) + 1
    cmd = [sys.executable, "-m", "ivr", "serve", "--config", str(config), "--data", str(data)]
    cmd += ["--port", str(port), "--log-level", "WARNING", "--sip-port", str(sip_port)]
    cmd += ["--drain-s", "0"]
    cmd += ["--rtp-ports", f"{RTP_LOW}-{high}"]
    if loop is not None:
        cmd += ["--loop", loop]
    proc = subprocess.Popen(
        ["taskset", "-c", cpu, *cmd], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    capacity.wait_listening(proc, "SIP server")
    return proc, sip_port, high, f"http://127.0.0.1:{port}"


class Sniffer(threading.Thread):
    """The RTP the server sends from ports ``low``..``high``: per stream (our port), the
    kernel receive time and RTP timestamp of each packet, seen on the loopback interface."""

    def __init__(self, low: int, high: int) -> None:
        super().__init__(daemon=True)
        self.low, self.high = low, high
        self.packets: dict[int, list[tuple[float, int]]] = {}
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind(("lo", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE
        self.sock.settimeout(0.2)
        self.stopping = threading.Event()

    def run(self) -> None:
        low, high, packets = self.low, self.high, self.packets
        while not self.stopping.is_set():
            try:
                data, anc, _flags, addr = self.sock.recvmsg(2048, 64)
            except TimeoutError:
                continue
            if addr[2] == PACKET_OUTGOING or len(data) < 54 or data[23] != 17:
                continue  # each loopback packet is seen going out and coming in; UDP only
            ihl = (data[14] & 0x0F) * 4
            udp = 14 + ihl
            src = (data[udp] << 8) | data[udp + 1]
            if not low <= src <= high or src & 1:  # RTP from our even ports, not RTCP
                continue
            rtp = udp + 8
            if data[rtp] >> 6 != 2:
                continue
            ts = struct.unpack_from("!I", data, rtp + 4)[0]
            when = time.time()
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", value[:16])
                    when = sec + nsec / 1e9
            packets.setdefault(src, []).append((when, ts))

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)
        self.sock.close()


def judge(
    packets: dict[int, list[tuple[float, int]]], lo: float, hi: float
) -> tuple[Histogram, int]:
    """Lateness of the packets that arrived in [lo, hi) (times since the epoch), and how
    many packets are missing from the streams' timestamp sequences in that window."""
    window, lost = Histogram(), 0
    for stream in packets.values():
        anchor: float | None = None
        first_ts = stream[0][1]
        seen: set[int] = set()
        for when, ts in stream:
            k = ((ts - first_ts) & 0xFFFFFFFF) // 160
            scheduled = when - k * 0.02
            if anchor is None or scheduled < anchor:
                anchor, late = scheduled, 0.0
            else:
                late = (scheduled - anchor) * 1000
            if lo <= when < hi:
                window.add(late)
                seen.add(k)
        if seen:
            lost += (max(seen) - min(seen) + 1) - len(seen)
    return window, lost


def sipp_command(
    target: str, folder: Path, *, calls: int, rate: float, limit: int, talk_s: float, cpu: str
) -> list[str]:
    media = random.randrange(42000, 60000, 2)
    argv = ["taskset", "-c", cpu, "sipp", target, "-sf", str(SCENARIO), "-s", "+15550100"]
    argv += ["-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(free_sip_port())]
    argv += ["-mp", str(media), "-m", str(calls), "-r", str(rate), "-l", str(limit)]
    argv += ["-set", "wait_ms", "0", "-set", "talk_ms", str(int(talk_s * 1000))]
    argv += ["-nostdin", "-timeout", f"{talk_s + 120:.0f}s", "-timeout_error"]
    argv += ["-trace_rtt", "-rtt_freq", "1", "-max_socket", "65000"]
    return argv


def sip_trial(
    n: int, args: argparse.Namespace, config: Path, folder: Path, loop: str | None = None
) -> Trial:
    t0 = time.monotonic()
    ramp_s = n / args.rate
    talk_s = ramp_s + SETTLE_S + args.window_s + 2.0
    run = folder / f"sip-{n}-{time.monotonic_ns()}"
    run.mkdir()
    ulaw_stream(talk_s + 1, run)
    proc, sip_port, high, _url = start_sip_server(config, folder, args.server_cpu, n, loop)
    sniffer = Sniffer(RTP_LOW, high)
    sniffer.start()
    spy = None
    try:
        cpu0 = capacity.cpu_s(proc.pid)
        spy = capacity.profiler(args, proc.pid, ramp_s + SETTLE_S, f"sip-{loop or 'auto'}-{n}")
        cmd = sipp_command(
            f"127.0.0.1:{sip_port}", run, calls=n, rate=args.rate, limit=n, talk_s=talk_s,
            cpu=args.runner_cpu,
        )  # fmt: skip
        start = time.time()
        with (run / "sipp.err").open("wb") as err_file:
            sipp = subprocess.Popen(cmd, cwd=run, stdout=subprocess.DEVNULL, stderr=err_file)
        sipp_cpu, until = 0.0, time.monotonic() + talk_s + 60
        while sipp.poll() is None and time.monotonic() < until:
            with contextlib.suppress(OSError, IndexError, ValueError):
                sipp_cpu = capacity.cpu_s(sipp.pid)  # taskset execs SIPp: the same pid
            time.sleep(0.25)
        if sipp.poll() is None:
            sipp.kill()
        sipp.wait()
        err = (run / "sipp.err").read_bytes()
        server_cpu = capacity.cpu_s(proc.pid) - cpu0
    finally:
        sniffer.stop()
        capacity.stop(proc)
        if spy is not None:
            spy.wait(timeout=30)
    lo, hi = start + ramp_s + SETTLE_S, start + ramp_s + SETTLE_S + args.window_s
    window, lost = judge(sniffer.packets, lo, hi)
    setups = rtts(run)
    why = []
    if sipp.returncode != 0:
        why.append(f"SIPp exit {sipp.returncode}: {err.decode(errors='replace')[-200:].strip()}")
    if window.n < n * 50 * args.window_s * 0.9:
        why.append(f"only {window.n} packets in the window")
    p99, p999 = window.percentile(99.0), window.percentile(99.9)
    passed = not why and p99 < P99_MS and p999 < P999_MS and window.max <= MAX_MS and lost == 0
    call_s = n * talk_s
    trial = Trial(
        system="SIP", calls=n, passed=passed, p99=p99, p999=p999, max=window.max, lost=lost,
        failed=0 if sipp.returncode == 0 else 1, server_cpu_ms=server_cpu * 1000 / call_s,
        runner_cpu_ms=sipp_cpu * 1000 / call_s, runner_p99=0.0, seconds=time.monotonic() - t0,
        setup_p99=float(np.percentile(setups, 99)) if setups else None, why="; ".join(why),
    )  # fmt: skip
    return trial


def rtts(folder: Path) -> list[float]:
    """SIPp's response times 1 (INVITE to 200 OK), in ms, from its ``*_rtt.csv``."""
    values: list[float] = []
    for path in folder.glob("*_rtt.csv"):
        with path.open() as f:
            for row in csv.reader(f, delimiter=";"):
                if len(row) >= 2 and row[1].replace(".", "", 1).isdigit():
                    values.append(float(row[1]))
    return values


def search_sip(
    start: int, max_trials: int, deadline: float, args: argparse.Namespace, config: Path,
    folder: Path, trials: list[Trial],
) -> tuple[int, int | None]:  # fmt: skip
    """capacity.search for SIP trials: doubling, then bisection."""
    lo, hi = 0, None
    n = max(10, start)
    for _ in range(max_trials):
        if time.monotonic() + n / args.rate + args.window_s + 20 > deadline:
            print("  SIP: time budget spent", flush=True)
            break
        t = sip_trial(n, args, config, folder)
        trials.append(t)
        print(t.line(), flush=True)
        lo, hi = (n, hi) if t.passed else (lo, n)
        if hi is not None and hi - lo <= max(10, lo // 10):
            break
        n = n * 2 if hi is None else (lo + hi) // 2
        if lo == 0 and hi is not None:
            n = max(10, hi // 2)
    return lo, hi


def setup_run(
    concurrent: int, seconds: float, args: argparse.Namespace, config: Path, folder: Path
) -> list[float]:
    """SIPp at 20 calls/s, each call ``concurrent / 20`` s long: ``concurrent`` calls up
    once ramped; the INVITE-to-200 times of the calls after the first ``concurrent``."""
    rate = 20.0
    hold_s = max(1.0, concurrent / rate)
    calls = int(rate * seconds)
    run = folder / f"setup-{time.monotonic_ns()}"
    run.mkdir()
    ulaw_stream(hold_s + 1, run)
    proc, sip_port, _high, _ = start_sip_server(config, folder, args.server_cpu, concurrent * 2)
    try:
        cmd = sipp_command(
            f"127.0.0.1:{sip_port}", run, calls=calls, rate=rate, limit=concurrent * 2,
            talk_s=hold_s, cpu=args.runner_cpu,
        )  # fmt: skip
        sipp = subprocess.run(cmd, cwd=run, capture_output=True, timeout=seconds + hold_s + 90)
    finally:
        capacity.stop(proc)
    if sipp.returncode != 0:
        print(f"  set-up run: SIPp exit {sipp.returncode}", flush=True)
    values = rtts(run)
    return values[concurrent:] if len(values) > concurrent * 2 else values


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget-s", type=float, default=360.0, help="stop searching after this")
    p.add_argument("--server-cpu", default="0")
    p.add_argument("--runner-cpu", default="1")
    p.add_argument("--rate", type=float, default=50.0, help="arrivals per second in each trial")
    p.add_argument("--window-s", type=float, default=6.0, help="steady window judged per trial")
    p.add_argument("--start", type=int, default=100, help="first n tried")
    p.add_argument(
        "--trial",
        action="append",
        metavar="KIND:N",
        help="run just these trials (sip:N, ws:N, or ws@asyncio:N / sip@asyncio:N for the "
        "server on the standard loop) at fixed loads, in order, and print them",
    )
    capacity.add_profile_options(p)
    args = p.parse_args()
    # This process (and its packet sniffer) is apparatus: it runs beside the callers,
    # never on the server's CPU.
    os.sched_setaffinity(0, {int(c) for c in args.runner_cpu.split(",")})
    for tool in ("taskset", "sipp"):
        if shutil.which(tool) is None:
            print(f"{tool} is needed", file=sys.stderr)
            return 2
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)).close()
    except PermissionError:
        print("a raw packet socket is needed (root or CAP_NET_RAW)", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="ivr-sip-bench-"))
    try:
        (folder / "ws").mkdir()
        (folder / "sip").mkdir()
        ws_config = capacity.bench_config(folder / "ws")
        config = sip_config(folder / "sip")
        if args.trial:
            for spec in args.trial:
                kind, _, n = spec.partition(":")
                base, _, loop = kind.partition("@")
                if base not in ("sip", "ws") or not n.isdigit() or loop not in LOOPS:
                    print(f"--trial {spec}: expected sip[@LOOP]:N or ws[@LOOP]:N", file=sys.stderr)
                    return 2
                suffix = f"@{loop}" if loop else ""
                if base == "ws":
                    t = capacity.trial("norec" + suffix, int(n), args, ws_config, folder)
                else:
                    t = sip_trial(int(n), args, config, folder, loop=loop or None)
                print(t.line(), flush=True)
            return 0
        start = time.monotonic()
        deadline = start + args.budget_s
        print(
            f"sip_bench: server on CPU {args.server_cpu}, callers on CPU {args.runner_cpu}, "
            f"{args.rate:g} arrivals/s, {args.window_s:g} s steady window; thresholds "
            f"p99 < {P99_MS:g} ms, p99.9 < {P999_MS:g} ms, max <= {MAX_MS:g} ms, none lost",
            flush=True,
        )
        trials: list[Trial] = []
        ws = capacity.search(
            "norec", args.start, 6, start + args.budget_s * 0.38, args, ws_config,
            folder, trials,
        )  # fmt: skip
        sip = search_sip(
            ws[0] or args.start, 6, start + args.budget_s * 0.82, args, config, folder, trials
        )
        half = max(10, sip[0] // 2)
        left = deadline - time.monotonic()
        setup_s = max(5.0, min(20.0, left - half / 20 - 25))
        setups = setup_run(half, setup_s, args, config, folder)
        print()
        for name, (lo, hi) in (("WebSocket (norec)", ws), ("SIP (PCMU, RTP)", sip)):
            bracket = f"passes at {lo}, fails at {hi}" if hi else f"passes at {lo} (no failure)"
            print(f"  {name:<20} capacity {lo:>5}   {bracket}")
        ratio = f"{sip[0] / ws[0]:.2f}" if ws[0] else "-"
        print(f"  SIP / WebSocket ratio {ratio} (target >= 1.0)")
        if setups:
            q = np.percentile(setups, [50, 90, 99])
            print(
                f"  set-up, 20 calls/s onto {half} calls ({len(setups)} calls): INVITE to 200 "
                f"p50 {q[0]:.1f} ms, p90 {q[1]:.1f} ms, p99 {q[2]:.1f} ms, max "
                f"{max(setups):.1f} ms (target p99 < 20)"
            )
        print(f"  total {time.monotonic() - start:.0f} s")
        return 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
