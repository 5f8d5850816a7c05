"""``ivr simulate``: a load scenario in virtual time, with the same report as ``ivr load``.

The scenario's calls are planned as ``ivr load`` plans them
(:func:`ivr.load.scenario.plan`, from its seed), placed by the load runner's
own worker and virtual callers and agents (:class:`ivr.load.worker.Worker`),
on the simulator's virtual clock and in-memory connections
(:mod:`ivr.simulate.wire`), against a :class:`ivr.simulate.switch.Switch`
of the config. Every call is then verified as ``ivr load`` verifies it
(:func:`ivr.load.verify.verify_calls`: the decision, the recordings, the
caller's audio in the left channel frame for frame), reading the store
through the REST API's serialisers, and the report is ``ivr load``'s, with a
``simulation`` section: the seed, the simulated duration, the wall time and
the speed-up.

In virtual time nothing is late: the lateness and set-up figures measure
the switch's logic (a prompt's length, a bot's answer delay), not a
machine. The same seed gives the same report, apart from its wall-clock
fields (``run.started_at``, ``run.wall_s``, ``runner``, ``simulation.wall_s``,
``simulation.speed_up``, ``versions``, ``machine``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ivr.config import Config
from ivr.load.audio import read_talk_file, wire_codec
from ivr.load.report import build_report
from ivr.load.runner import RunResult, Target, merge_results, tone_pcm
from ivr.load.scenario import Scenario, plan
from ivr.load.verify import verify_calls
from ivr.load.worker import Worker, WorkerJob
from ivr.simulate.switch import Switch
from ivr.simulate.wire import SIM_TOKEN, StoreReader, Wire

START_DELAY_S = 0.2


@dataclass(frozen=True, slots=True)
class Simulated:
    """A simulated run: ``ivr load``'s result, and how long it took in each time."""

    result: RunResult
    seed: int
    simulated_s: float
    wall_s: float

    @property
    def speed_up(self) -> float:
        return self.simulated_s / self.wall_s if self.wall_s > 0 else float("inf")

    def report(self) -> dict[str, Any]:
        out = build_report(self.result)
        out["simulation"] = {
            "virtual_time": True,
            "seed": self.seed,
            "simulated_s": round(self.simulated_s, 3),
            "wall_s": round(self.wall_s, 3),
            "speed_up": round(self.speed_up, 1),
        }
        return out


WALL_CLOCK_FIELDS = (
    ("run", "started_at"),
    ("run", "wall_s"),
    ("runner", None),
    ("simulation", "wall_s"),
    ("simulation", "speed_up"),
    ("versions", None),
    ("machine", None),
)
"""The report's fields that depend on the machine and the moment, not on the seed."""


def without_wall_clock(report: dict[str, Any]) -> dict[str, Any]:
    """``report`` without :data:`WALL_CLOCK_FIELDS`: what one seed makes the same every time."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in report.items()}
    for section, key in WALL_CLOCK_FIELDS:
        if key is None:
            out.pop(section, None)
        elif isinstance(out.get(section), dict):
            out[section].pop(key, None)
    return out


def simulate(
    scenario: Scenario,
    config: Config,
    *,
    verify: bool = True,
    prove: bool = True,
    data_dir: Path | None = None,
) -> Simulated:
    """Run ``scenario`` against a simulated switch of ``config``, in virtual time."""
    spec = scenario.spec
    t0 = time.perf_counter()
    with Switch.open(config, seed=spec.seed, data_dir=data_dir, prove=prove) as switch:
        sb, store = switch.switchboard, switch.store
        assert sb is not None
        assert store is not None
        wire = Wire(sb, store, spec.faults, spec.seed)
        loop = switch.loop
        started = loop.time()
        outage = spec.faults.store_outage if spec.faults is not None else None
        if outage is not None:
            down_at = started + START_DELAY_S + outage.at_s
            up_at = down_at + outage.for_s
            store.refuse_writes(lambda: down_at <= loop.time() < up_at)
        started_at = datetime.now(UTC).isoformat(timespec="seconds")

        async def run() -> RunResult:
            if spec.agents is not None:
                await wire.add_agents(spec.agents.team)
            plans = plan(scenario)
            job = WorkerJob(
                worker=0,
                scenario=scenario,
                plans=plans,
                ws_url="sim://switch",
                concurrency=spec.concurrency,
                agents=spec.agents.count if spec.agents is not None else 0,
                agent_token=SIM_TOKEN if spec.agents is not None else None,
            )
            worker = Worker(job, None, now=loop.time, connect=wire.connect, phases=1)
            results = [await worker.run(loop.time() + START_DELAY_S)]
            target = Target("sim://switch", embedded=True)
            result = merge_results(
                scenario, target, 0, started_at, time.perf_counter() - t0, results
            )
            if verify:
                codec = wire_codec(spec.codec, spec.rate)
                result.verification = await verify_calls(
                    StoreReader(store),
                    result.calls,
                    codec,
                    talk_file_pcm=read_talk_file(scenario.talk_file, spec.rate)
                    if scenario.talk_file
                    else None,
                    tone_frames=tone_pcm(scenario, codec),
                )
            else:
                result.notes.append("verification skipped (--no-verify)")
            result.notes.append("simulated: virtual time, in-memory connections")
            if spec.faults is not None:
                result.notes.append(
                    "faults injected: " + json.dumps(spec.faults.model_dump(exclude_defaults=True))
                )
            return result

        result = switch._run(run())
        simulated = loop.time() - started
    wall = time.perf_counter() - t0
    result.wall_s = wall
    return Simulated(result, spec.seed, simulated, wall)
