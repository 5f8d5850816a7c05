"""One process's share of a load run: its callers, its agents, and its one 20 ms scheduler.

A :class:`Worker` places the calls of its :class:`WorkerJob` at their planned
times (at most ``concurrency`` at once), and ticks every live caller and agent
every 20 ms from a single task paced against a start time, as the server's
media clock does: so a process holds hundreds of callers at the cost of one
timer (callers are spread over a few phases of the 20 ms period, so that
their frames do not all leave in one burst). Connections deliver frames straight to the callers
(:mod:`ivr.load.wsclient`); the worker only aggregates what they measure
(frame lateness into histograms, per second of the run) and reports progress.

:func:`process_main` is the entry point of a worker process: it says
``ready``, waits for ``go`` (the shared start time; ``time.monotonic`` is one
clock for every process of the machine), runs, and sends its
:class:`WorkerResult` back over its pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Protocol

from ivr import eventloop as event_loop
from ivr.load.audio import (
    SignatureTables,
    TalkSignal,
    WireCodec,
    dtmf_frames,
    file_talk,
    read_talk_file,
    wire_codec,
)
from ivr.load.caller import AgentStats, CallResult, VirtualAgent, VirtualCaller
from ivr.load.errors import ServerUnusable
from ivr.load.metrics import Histogram
from ivr.load.scenario import CallPlan, Scenario
from ivr.load.wsclient import HandshakeFailed, Receiver, connect

log = logging.getLogger("ivr.load")

TICK_S = 0.02
# Callers are spread over PHASES evenly spaced slots of the 20 ms period, so a
# process's frames reach the server in small groups, as independent phones'
# would, not in one burst per tick.
PHASES = 4
MAX_CATCH_UP_S = 0.2
CONNECT_TIMEOUT_S = 10.0


class Link(Protocol):
    """A caller's or an agent's connection, as the worker uses it (a :class:`WsConnection`)."""

    closed: asyncio.Future[None]

    def send_text(self, text: str) -> None: ...

    def send_binary(self, data: bytes) -> None: ...

    def close(self, code: int = 1000) -> None: ...

    def abort(self) -> None: ...


Connect = Callable[[str, Receiver, float], Awaitable[Link]]
"""Opens a connection to a URL for a receiver, within a timeout (:func:`wsclient.connect`)."""


@dataclass(frozen=True, slots=True)
class WorkerJob:
    """What one worker is to do."""

    worker: int
    scenario: Scenario
    plans: list[CallPlan]
    ws_url: str  # ws://host:port, without a path
    concurrency: int
    agents: int = 0
    agent_token: str | None = None


@dataclass(slots=True)
class Second:
    """What one worker saw during one second of the run."""

    active: int = 0
    started: int = 0
    ended: int = 0
    lateness: Histogram = field(default_factory=Histogram)

    def to_dict(self) -> dict[str, Any]:
        return {
            "active": self.active,
            "started": self.started,
            "ended": self.ended,
            "lateness": self.lateness.to_dict(),
        }


@dataclass(slots=True)
class WorkerResult:
    """What a worker hands back: every call, and its aggregates."""

    worker: int
    calls: list[CallResult]
    lateness: dict[str, Any]
    runner_lateness: dict[str, Any]
    timeline: dict[int, dict[str, Any]]
    cpu_s: float
    wall_s: float
    agents: AgentStats


Progress = Callable[[dict[str, Any]], None]


class Worker:
    """Runs a :class:`WorkerJob` in the current event loop.

    ``now`` and ``connect`` are the clock it keeps time by and how it reaches
    the server: the monotonic clock and WebSockets, or the simulator's
    virtual clock and in-memory connections (:mod:`ivr.simulate.wire`).
    """

    def __init__(
        self,
        job: WorkerJob,
        progress: Progress | None = None,
        *,
        now: Callable[[], float] = time.monotonic,
        connect: Connect = connect,
        phases: int = PHASES,
    ) -> None:
        self.job = job
        self._now = now
        self._connect = connect
        # A simulated run has no network to spread frames over: one phase, one timer a tick.
        self.phases = phases
        spec = job.scenario.spec
        self.spec = spec
        self.progress = progress
        self.codec: WireCodec = wire_codec(spec.codec, spec.rate)
        self._tables: SignatureTables | None = None
        self._file_talk: TalkSignal | None = None
        if job.scenario.talk_file is not None:
            pcm = read_talk_file(job.scenario.talk_file, spec.rate)
            self._file_talk = file_talk(self.codec, pcm)
        else:
            self._tables = SignatureTables(self.codec)
        self.tones: dict[str, list[bytes]] | None = None
        if spec.dtmf.mode == "inband":
            digits = {b.digit_to_press for b in spec.mix.values()} - {None}
            self.tones = {
                d: dtmf_frames(self.codec, d, spec.dtmf.duration_ms, spec.dtmf.level_dbm0)
                for d in sorted(x for x in digits if x is not None)
            }
        self.start = 0.0
        self.live: list[dict[int, tuple[VirtualCaller, Link]]] = [{} for _ in range(phases)]
        self.agents: list[tuple[VirtualAgent, Link]] = []
        self.agent_stats = AgentStats()
        self.results: list[CallResult] = []
        self.runner_lateness = Histogram()
        self.timeline: dict[int, Second] = {}
        # The current second's frame lateness values (see Sink), and the histogram
        # they go to when the second is over (or the run).
        self.lateness_ms: list[float] = []
        self._lateness_into = self._second(0).lateness
        self.started = self.active = self.done = self.failed = 0
        self._recent: dict[str, list[float]] = {"setup_answered_ms": [], "dtmf_response_ms": []}
        self._reported_sec = -1
        self._stopping = False

    # -- the Sink the callers report to ---------------------------------------------

    def sample(self, metric: str, value_ms: float) -> None:
        recent = self._recent.get(metric)
        if recent is not None:
            recent.append(value_ms)

    def _fold_lateness(self, into: Histogram) -> None:
        """Add the lateness values gathered so far to their second; gather for ``into``."""
        values, self.lateness_ms = self.lateness_ms, []
        self._lateness_into.add_all(values)
        self._lateness_into = into

    def _second(self, sec: int) -> Second:
        s = self.timeline.get(sec)
        if s is None:
            s = self.timeline[sec] = Second()
        return s

    # -- running ----------------------------------------------------------------------

    async def run(self, start_at: float) -> WorkerResult:
        """Place every call of the job from ``start_at`` (a ``time.monotonic`` instant) on."""
        self.start = start_at
        # What exists now (modules, codec tables, the scenario) lives as long as the run:
        # out of the collector's way, a full collection in the run does not walk it all.
        gc.freeze()
        cpu0, wall0 = time.process_time(), self._now()
        loop = asyncio.get_running_loop()
        clock = loop.create_task(self._clock(), name="load-clock")
        try:
            if self.job.agents:
                await self._start_agents()
            sem = asyncio.Semaphore(self.job.concurrency)
            tasks: set[asyncio.Task[None]] = set()
            for plan in self.job.plans:
                delay = start_at + plan.at_s - self._now()
                if delay > 0:
                    await asyncio.sleep(delay)
                await sem.acquire()
                task = loop.create_task(self._call(plan, sem))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            while tasks:
                await asyncio.gather(*list(tasks))
        finally:
            for _, conn in self.agents:
                conn.close()
            if self.agents:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5):
                        await asyncio.gather(*(c.closed for _, c in self.agents))
            self._stopping = True
            clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await clock
            self._fold_lateness(self._lateness_into)
            gc.unfreeze()
        self._report()
        self.results.sort(key=lambda r: r.index)
        total = Histogram()
        for second in self.timeline.values():
            total.merge(second.lateness)
        return WorkerResult(
            worker=self.job.worker,
            calls=self.results,
            lateness=total.to_dict(),
            runner_lateness=self.runner_lateness.to_dict(),
            timeline={k: v.to_dict() for k, v in sorted(self.timeline.items())},
            cpu_s=time.process_time() - cpu0,
            wall_s=self._now() - wall0,
            agents=self.agent_stats,
        )

    async def _start_agents(self) -> None:
        spec = self.spec.agents
        assert spec is not None
        assert self.job.agent_token is not None
        agent_codec = wire_codec("pcm_s16le", 8000)
        changed = asyncio.Event()
        for _ in range(self.job.agents):
            agent = VirtualAgent(spec, self.job.agent_token, self.agent_stats, agent_codec)
            agent.on_change = changed.set
            conn = await self._connect(self.job.ws_url + "/v1/agent", agent, CONNECT_TIMEOUT_S)
            agent.attach(conn, self._now())
            self.agents.append((agent, conn))
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            while not all(a.ready or a.closed for a, _ in self.agents):
                changed.clear()
                await changed.wait()
        if not all(a.ready for a, _ in self.agents):
            why = ", ".join(sorted(set(self.agent_stats.errors))) or "closed"
            raise ServerUnusable(f"the virtual agents of team {spec.team} cannot sign in: {why}")

    def _talk(self, plan: CallPlan) -> TalkSignal:
        if self._file_talk is not None:
            return self._file_talk
        assert self._tables is not None
        return self._tables.noise_talk(plan.seed)

    async def _call(self, plan: CallPlan, sem: asyncio.Semaphore) -> None:
        behaviour = self.spec.mix[plan.behaviour]
        caller = VirtualCaller(
            plan,
            behaviour,
            self.spec,
            self.codec,
            self._talk(plan),
            self.tones,
            self,
            self.start,
        )
        now = self._now()
        caller.connecting(now)
        self.started += 1
        self.active += 1
        self._second(int(now - self.start)).started += 1
        try:
            try:
                conn = await self._connect(self.job.ws_url + "/v1/call", caller, CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError, HandshakeFailed) as exc:
                caller.fail("connect_failed", f"{type(exc).__name__}: {exc}", self._now())
                return
            caller.attach(conn, self._now())
            live = self.live[plan.index % self.phases]
            live[plan.index] = (caller, conn)
            try:
                limit = self.spec.call_timeout_s + 30.0
                async with asyncio.timeout(limit):
                    await conn.closed
            except TimeoutError:
                conn.abort()
                caller.fail("timeout", "the connection never closed", self._now())
            finally:
                live.pop(plan.index, None)
            if not caller.finished:
                caller.on_close(None, self._now())
        finally:
            now = self._now()
            self.active -= 1
            self.done += 1
            if not caller.result.ok:
                self.failed += 1
            self._second(int(now - self.start)).ended += 1
            self.results.append(caller.result)
            sem.release()

    async def _clock(self) -> None:
        """Every 5 ms, tick the callers of one phase; paced against a start time."""
        start = self._now()
        k = 0
        tick_sec = -1
        sleep = asyncio.sleep
        monotonic = self._now
        live = self.live
        phases = self.phases
        subtick = TICK_S / phases
        progress_every = 25 * phases  # half a second
        while not self._stopping:
            k += 1
            target = start + k * subtick
            delay = target - monotonic()
            if delay > 0:
                await sleep(delay)
            now = monotonic()
            late = now - target
            if late > MAX_CATCH_UP_S:
                k += int(late / subtick)
            self.runner_lateness.add(late * 1000 if late > 0 else 0.0)
            phase = k % phases
            for caller, conn in list(live[phase].values()):
                try:
                    frame = caller.tick(now)
                    if frame is not None:
                        conn.send_binary(frame)
                except Exception as exc:  # one caller's bug ends that call, not the run
                    log.exception("call %d failed in the runner", caller.plan.index)
                    caller.fail("runner_error", f"{type(exc).__name__}: {exc}", now)
                    conn.abort()
            if phase == 0:
                for agent, aconn in self.agents:
                    frame = agent.tick(now)
                    if frame is not None:
                        aconn.send_binary(frame)
            sec = int(now - self.start)
            if sec != tick_sec and sec >= 0:
                # A new second: sample the concurrency, file the lateness values.
                tick_sec = sec
                second = self._second(sec)
                second.active = self.active
                self._fold_lateness(second.lateness)
            if k % progress_every == 0:
                self._report()
            if delay <= 0:
                await sleep(0)

    def _report(self) -> None:
        if self.progress is None:
            return
        recent, self._recent = self._recent, {k: [] for k in self._recent}
        # The seconds completed since the last report.
        now_sec = int(self._now() - self.start)
        lateness = Histogram()
        for sec in range(self._reported_sec + 1, now_sec):
            s = self.timeline.get(sec)
            if s is not None:
                lateness.merge(s.lateness)
        self._reported_sec = max(self._reported_sec, now_sec - 1)
        self.progress(
            {
                "worker": self.job.worker,
                "t": self._now() - self.start,
                "started": self.started,
                "active": self.active,
                "done": self.done,
                "failed": self.failed,
                "samples": recent,
                "lateness": lateness.to_dict(),
            }
        )


def process_main(pipe: Connection, job: WorkerJob) -> None:
    """A worker process: ``ready``, wait for ``("go", start_at)``, run, send the result."""
    try:
        worker = Worker(job, lambda p: pipe.send(("progress", p)))
        pipe.send(("ready", job.worker))
        message = pipe.recv()
        if message[0] != "go":
            return
        result = event_loop.run(worker.run(float(message[1])))
        pipe.send(("result", result))
    except KeyboardInterrupt:
        pass
    except BaseException as exc:
        pipe.send(("error", f"worker {job.worker}: {type(exc).__name__}: {exc}"))
        raise
    finally:
        pipe.close()
