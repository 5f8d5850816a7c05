"""The load run: plan the calls, spread them over worker processes, verify, report.

:func:`run_load` is the whole run against a server that is already up
(``--url``, or the one ``--embedded`` starts): it signs in (verification and
virtual agents need a token), splits the plan round-robin over
``processes`` workers (0: one worker in this very event loop, which tests
use), starts them together, shows progress, merges what they measured,
checks every call through the API (:mod:`ivr.load.verify`), and returns a
:class:`RunResult` for :mod:`ivr.load.report`.

Worker processes are started with ``spawn`` (nothing of the parent's event
loop leaks into them) and talk to the parent over one pipe each, read with
``loop.add_reader``: ``ready``, then ``progress`` every half second, then
``result``.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from ivr.load.audio import WireCodec, dtmf_frames, read_talk_file, wire_codec
from ivr.load.caller import AgentStats, CallResult
from ivr.load.errors import LoadError, ServerUnusable
from ivr.load.metrics import Histogram
from ivr.load.progress import Display, Tally
from ivr.load.scenario import CallPlan, Scenario, plan
from ivr.load.verify import Api, Verification, login, verify_calls
from ivr.load.worker import Worker, WorkerJob, WorkerResult, process_main

CALLS_PER_PROCESS = 300  # default split: a process per this many concurrent calls
START_DELAY_S = 0.2


@dataclass(frozen=True, slots=True)
class Target:
    """The server under test, and who the runner signs in as."""

    url: str  # http(s)://host:port
    email: str | None = None
    password: str | None = None
    embedded: bool = False

    @property
    def ws_url(self) -> str:
        parts = urlsplit(self.url)
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        return urlunsplit((scheme, parts.netloc, "", "", ""))

    @classmethod
    def parse(cls, url: str, **kwargs: Any) -> Target:
        """Accepts http(s):// or ws(s):// URLs, with or without a path."""
        parts = urlsplit(url if "://" in url else f"http://{url}")
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
        if scheme not in ("http", "https") or not parts.hostname:
            raise ServerUnusable(f"not a server URL: {url!r} (use http://HOST:PORT)")
        return cls(urlunsplit((scheme, parts.netloc, "", "", "")), **kwargs)


@dataclass(slots=True)
class RunResult:
    """Everything a run measured, merged over its workers."""

    scenario: Scenario
    target: Target
    processes: int
    started_at: str
    wall_s: float
    calls: list[CallResult]
    lateness: Histogram
    runner_lateness: Histogram
    timeline: dict[int, dict[str, Any]]
    cpu_s: float
    agents: AgentStats
    verification: Verification | None = None
    notes: list[str] = field(default_factory=list)


def default_processes(scenario: Scenario) -> int:
    spec = scenario.spec
    if spec.processes is not None:
        return spec.processes
    if spec.concurrency <= 100:
        return 0
    return max(1, min(os.cpu_count() or 1, -(-spec.concurrency // CALLS_PER_PROCESS)))


def _jobs(
    scenario: Scenario, plans: list[CallPlan], n: int, ws_url: str, token: str | None
) -> list[WorkerJob]:
    spec = scenario.spec
    n = max(1, min(n, len(plans)))
    base, extra = divmod(spec.concurrency, n)
    agents = spec.agents.count if spec.agents is not None else 0
    return [
        WorkerJob(
            worker=i,
            scenario=scenario,
            plans=plans[i::n],
            ws_url=ws_url,
            concurrency=max(1, base + (1 if i < extra else 0)),
            agents=agents if i == 0 else 0,
            agent_token=token if i == 0 else None,
        )
        for i in range(n)
    ]


async def _in_process(
    job: WorkerJob, on_progress: Callable[[dict[str, Any]], None]
) -> list[WorkerResult]:
    worker = Worker(job, on_progress)
    return [await worker.run(time.monotonic() + START_DELAY_S)]


async def _in_processes(
    jobs: list[WorkerJob], on_progress: Callable[[dict[str, Any]], None]
) -> list[WorkerResult]:
    ctx = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[tuple[int, tuple[Any, ...]]] = asyncio.Queue()
    pipes: list[Connection] = []
    procs = []
    try:
        for job in jobs:
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=process_main, args=(child, job), name=f"ivr-load-{job.worker}", daemon=True
            )
            proc.start()
            child.close()
            pipes.append(parent)
            procs.append(proc)

            def readable(i: int = job.worker, pipe: Connection = parent) -> None:
                try:
                    while pipe.poll():
                        inbox.put_nowait((i, pipe.recv()))
                except (EOFError, OSError):
                    loop.remove_reader(pipe.fileno())
                    inbox.put_nowait((i, ("eof",)))

            loop.add_reader(parent.fileno(), readable)
        ready: set[int] = set()
        while len(ready) < len(jobs):
            i, message = await inbox.get()
            if message[0] == "ready":
                ready.add(i)
            elif message[0] in ("error", "eof"):
                raise LoadError(
                    str(message[1]) if len(message) > 1 else f"worker {i} died at start"
                )
        start_at = time.monotonic() + START_DELAY_S
        for pipe in pipes:
            pipe.send(("go", start_at))
        results: dict[int, WorkerResult] = {}
        while len(results) < len(jobs):
            i, message = await inbox.get()
            kind = message[0]
            if kind == "progress":
                on_progress(message[1])
            elif kind == "result":
                results[i] = message[1]
            elif kind == "error":
                raise LoadError(str(message[1]))
            elif kind == "eof" and i not in results:
                raise LoadError(f"worker process {i} died (exit code {procs[i].exitcode})")
        return [results[i] for i in sorted(results)]
    finally:
        for pipe in pipes:
            with contextlib.suppress(OSError, ValueError):
                loop.remove_reader(pipe.fileno())
            pipe.close()
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)


async def _preflight(session: aiohttp.ClientSession, target: Target) -> None:
    try:
        async with session.get(target.url + "/v1/me") as resp:
            await resp.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ServerUnusable(f"cannot reach {target.url}: {exc or type(exc).__name__}") from exc


async def run_load(
    scenario: Scenario,
    target: Target,
    *,
    processes: int | None = None,
    verify: bool | None = None,
    progress: TextIO | None = None,
    tty: bool | None = None,
) -> RunResult:
    """Run ``scenario`` against ``target``; :class:`ServerUnusable` if it cannot be used at all."""
    spec = scenario.spec
    if spec.faults is not None:
        raise ServerUnusable(
            "the scenario has faults: the simulator injects them (ivr simulate); "
            "a real server gets no faults from ivr load"
        )
    verify = spec.verify if verify is None else verify
    n = default_processes(scenario) if processes is None else processes
    plans = plan(scenario)
    token: str | None = None
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await _preflight(session, target)
        if verify or spec.agents is not None:
            if not target.email or not target.password:
                need = "verification" if verify else "virtual agents"
                raise ServerUnusable(
                    f"{need} need(s) a user to sign in as: give --email and the password "
                    "(IVR_LOAD_PASSWORD or --password-stdin), or --no-verify"
                )
            token = await login(session, target.url, target.email, target.password)
        jobs = _jobs(scenario, plans, max(n, 1), target.ws_url, token)
        tally = Tally(len(plans))
        display = Display(tally, progress, tty)
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        t0 = time.monotonic()

        async def refresh() -> None:
            while True:
                await asyncio.sleep(0.5)
                display.refresh()

        refresher = asyncio.get_running_loop().create_task(refresh())
        try:
            if n == 0:
                worker_results = await _in_process(jobs[0], tally.update)
            else:
                worker_results = await _in_processes(jobs, tally.update)
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            display.close()
        result = merge_results(
            scenario, target, n, started_at, time.monotonic() - t0, worker_results
        )
        answered = [c for c in result.calls if c.call_id is not None]
        if not answered:
            first = result.calls[0] if result.calls else None
            why = f"{first.outcome}: {first.detail}" if first else "no calls"
            raise ServerUnusable(
                f"the server answered none of the {len(result.calls)} calls ({why})"
            )
        if verify and token is not None:
            codec = wire_codec(spec.codec, spec.rate)
            result.verification = await verify_calls(
                Api(session, target.url, token),
                result.calls,
                codec,
                talk_file_pcm=read_talk_file(scenario.talk_file, spec.rate)
                if scenario.talk_file
                else None,
                tone_frames=tone_pcm(scenario, codec),
            )
        elif not verify:
            result.notes.append("verification skipped (--no-verify)")
    return result


def tone_pcm(scenario: Scenario, codec: WireCodec) -> list[Any]:
    spec = scenario.spec
    if spec.dtmf.mode != "inband":
        return []

    out = []
    for b in spec.mix.values():
        d = b.digit_to_press
        if d is not None:
            out += [
                codec.decode(f)
                for f in dtmf_frames(codec, d, spec.dtmf.duration_ms, spec.dtmf.level_dbm0)
            ]
    return out


def merge_results(
    scenario: Scenario,
    target: Target,
    processes: int,
    started_at: str,
    wall_s: float,
    results: list[WorkerResult],
) -> RunResult:
    lateness, runner_lateness = Histogram(), Histogram()
    timeline: dict[int, dict[str, Any]] = {}
    agents = AgentStats()
    calls: list[CallResult] = []
    cpu = 0.0
    for r in results:
        calls.extend(r.calls)
        lateness.merge(Histogram.from_dict(r.lateness))
        runner_lateness.merge(Histogram.from_dict(r.runner_lateness))
        cpu += r.cpu_s
        for sec, s in r.timeline.items():
            t = timeline.setdefault(
                int(sec), {"active": 0, "started": 0, "ended": 0, "lateness": Histogram()}
            )
            t["active"] += s["active"]
            t["started"] += s["started"]
            t["ended"] += s["ended"]
            t["lateness"].merge(Histogram.from_dict(s["lateness"]))
        agents.signed_in += r.agents.signed_in
        agents.offers += r.agents.offers
        agents.answered += r.agents.answered
        agents.hung_up += r.agents.hung_up
        agents.errors += r.agents.errors
    calls.sort(key=lambda c: c.index)
    return RunResult(
        scenario=scenario,
        target=target,
        processes=processes,
        started_at=started_at,
        wall_s=wall_s,
        calls=calls,
        lateness=lateness,
        runner_lateness=runner_lateness,
        timeline=dict(sorted(timeline.items())),
        cpu_s=cpu,
        agents=agents,
    )
