"""Flow tests as data: YAML cases that dial a number, act as the caller and say what must happen.

A case file (docs/simulate.md)::

    config: ../../ivr.yaml        # optional: the config these cases test
    cases:
      - name: consent given reaches the recorded line
        dial: "+15550100"
        steps:
          - wait_prompt: consent
          - press: "1"
          - wait_connected
          - talk: 2
          - hangup
        expect:
          line: recorded
          recorded: true
          consent: granted
          prompts: [notice, consent, recorded]

Each case runs on a switch of its own (:class:`ivr.simulate.switch.Switch`),
in virtual time, from its seed. A step is a verb, alone or with its
argument: ``wait_prompt: NODE``, ``press: DIGITS``, ``press_inband: DIGITS``
(tones in the audio), ``talk: SECONDS``, ``silence: SECONDS``,
``wait_connected``, ``wait_end``, ``hangup``, and the faults
``stop_reading``, ``lose_frames: PERCENT``, ``fail_store: SECONDS``. A call still up after the
last step is hung up. ``expect`` names what is checked: ``line``,
``recorded``, ``consent``, ``reason``, ``agent`` (whether an agent
answered), ``prompts`` (the nodes heard, in order), ``path`` (the branches
taken, as :meth:`ivr.flows.Step.describe` writes them) and ``decision``
(fields of the recording decision). ``agents: {TEAM: N}`` gives a team N
bots for the case (0: nobody answers); ``people: {TEAM: N}`` seats N
simulated people of the team (``/v1/agent`` in memory), who answer after
``person_answers_after_s`` (1 s) and, with ``person_hangs_up_after_s``, hang
up first.

:func:`coverage` says which branches of each flow (the compliance proof's
edges, :func:`ivr.flows.compliance.branches`) no case took.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ivr.config import Config, load_config
from ivr.errors import InvalidConfig, Problem
from ivr.flows import Step, compliance, pydantic_problems
from ivr.simulate.switch import DEFAULT_CALLER, Call, FlowTestFailure, Switch

VERBS_WITH_ARG = (
    "wait_prompt",
    "press",
    "press_inband",
    "talk",
    "silence",
    "lose_frames",
    "fail_store",
)
VERBS_OPTIONAL_ARG = ("wait_connected", "wait_end", "hangup", "stop_reading")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Expect(_Model):
    line: str | None = None
    recorded: bool | None = None
    consent: str | None = None
    reason: str | None = None
    agent: bool | None = None
    prompts: list[str] | None = None
    path: list[str] | None = None
    decision: dict[str, Any] | None = None


class Case(_Model):
    name: str
    dial: str
    caller: str = Field(DEFAULT_CALLER, alias="from")
    rate: Literal[8000, 16000] = 8000
    seed: int = 0
    agents: dict[str, Annotated[int, Field(ge=0, le=10000)]] = Field(default_factory=dict)
    people: dict[str, Annotated[int, Field(ge=1, le=100)]] = Field(default_factory=dict)
    person_answers_after_s: Annotated[float, Field(ge=0, le=600)] = 1.0
    person_hangs_up_after_s: Annotated[float, Field(gt=0, le=86400)] | None = None
    steps: list[str | dict[str, Any]] = Field(default_factory=list)
    expect: Expect = Field(default_factory=Expect)


class CaseFile(_Model):
    config: str | None = None
    cases: list[Case]


@dataclasses.dataclass
class CaseResult:
    """One case's run: passed when ``failures`` is empty."""

    case: Case
    source: str
    config: Config
    failures: list[str]
    path: list[Step]
    prompts: list[str]
    simulated_s: float

    @property
    def passed(self) -> bool:
        return not self.failures


def load_cases(path: Path) -> CaseFile:
    """A case file, checked; :class:`InvalidConfig` naming each problem."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidConfig(str(path), [Problem("", f"cannot read the case file: {exc}")]) from exc
    try:
        cases = CaseFile.model_validate(data)
    except ValidationError as exc:
        raise InvalidConfig(str(path), pydantic_problems((), exc, data)) from exc
    problems = [
        Problem(f"cases.{i}.steps.{j}", why)
        for i, case in enumerate(cases.cases)
        for j, step in enumerate(case.steps)
        if (why := _step_problem(step)) is not None
    ]
    if problems:
        raise InvalidConfig(str(path), problems)
    return cases


def _verb(step: str | dict[str, Any]) -> tuple[str, Any]:
    if isinstance(step, str):
        return step, None
    ((verb, arg),) = step.items()
    return verb, arg


def _step_problem(step: str | dict[str, Any]) -> str | None:
    if isinstance(step, dict) and len(step) != 1:
        return "a step is one verb: write each on its own line"
    verb, arg = _verb(step)
    if verb in VERBS_WITH_ARG:
        if arg is None:
            return f"{verb!r} needs an argument"
        if verb in ("talk", "silence", "fail_store") and not (
            isinstance(arg, int | float) and arg >= 0
        ):
            return f"{verb!r} takes seconds (a number >= 0), not {arg!r}"
        if verb == "lose_frames" and not (isinstance(arg, int | float) and 0 <= arg <= 100):
            return f"'lose_frames' takes a percentage (0 to 100), not {arg!r}"
        if verb.startswith("press") and not isinstance(arg, str):
            # YAML reads 0123 as the number 83, and 1 as a number: keys are text.
            return f'{verb!r} takes keys in quotes, such as "1", not {arg!r}'
        if verb.startswith("press") and not (arg and set(arg) <= set("0123456789*#ABCD")):
            return f"{verb!r} takes keys (0-9, *, #, A-D), not {arg!r}"
        return None
    if verb in VERBS_OPTIONAL_ARG:
        if arg is not None and not isinstance(arg, int | float):
            return f"{verb!r} takes at most a number of seconds, not {arg!r}"
        return None
    return f"unknown step {verb!r} (one of {', '.join(VERBS_WITH_ARG + VERBS_OPTIONAL_ARG)})"


def case_config(config: Config, case: Case) -> Config:
    """``config`` with the case's ``agents`` given to their teams."""
    if not case.agents:
        return config
    teams = dict(config.teams)
    for team, bots in case.agents.items():
        if team not in teams:
            raise FlowTestFailure(f"case {case.name!r}: no team {team!r} in the config")
        teams[team] = teams[team].model_copy(update={"bots": bots})
    return dataclasses.replace(config, teams=teams)


def run_case(
    config: Config,
    case: Case,
    source: str = "",
    *,
    tts_cache: Path | None = None,
    prove: bool = True,
) -> CaseResult:
    """Run one case on a switch of its own; what failed, if anything."""
    failures: list[str] = []
    call: Call | None = None
    try:
        this = case_config(config, case)
    except FlowTestFailure as exc:
        return CaseResult(case, source, config, [str(exc)], [], [], 0.0)
    with Switch.open(this, seed=case.seed, tts_cache=tts_cache, prove=prove) as switch:
        try:
            for team, count in case.people.items():
                for _ in range(count):
                    switch.add_person(
                        team,
                        answer_after_s=case.person_answers_after_s,
                        hangup_after_s=case.person_hangs_up_after_s,
                    )
            call = switch.dial(case.dial, caller=case.caller, sample_rate=case.rate)
            for step in case.steps:
                _do(call, step)
            if not call.ended.is_set():
                call.hangup()
            _check(call, case.expect, failures)
        except FlowTestFailure as exc:
            failures.append(str(exc))
        simulated = switch.now
    return CaseResult(
        case,
        source,
        config,
        failures,
        call.path if call is not None else [],
        call.prompts if call is not None else [],
        simulated,
    )


def _do(call: Call, step: str | dict[str, Any]) -> None:
    verb, arg = _verb(step)
    if verb == "wait_prompt":
        call.wait_prompt(str(arg))
    elif verb == "press":
        call.press(str(arg))
    elif verb == "press_inband":
        call.press(str(arg), inband=True)
    elif verb == "talk":
        call.talk(float(arg))
    elif verb == "silence":
        call.silence(float(arg))
    elif verb == "wait_connected":
        call.wait_connected(*(() if arg is None else (float(arg),)))
    elif verb == "wait_end":
        call.wait_end(*(() if arg is None else (float(arg),)))
    elif verb == "stop_reading":
        call.stop_reading()
    elif verb == "lose_frames":
        call.lose_frames(float(arg))
    elif verb == "fail_store":
        call.switch.fail_store(float(arg))
    else:
        call.hangup()


def _check(call: Call, expect: Expect, failures: list[str]) -> None:
    given = expect.model_fields_set

    def differs(what: str, wanted: object, got: object) -> None:
        if wanted != got:
            failures.append(
                f"expected {what} {wanted!r}, got {got!r}; path taken: {call.describe_path()}"
            )

    if "line" in given:
        differs("line", expect.line, call.line)
    if "recorded" in given:
        differs("recorded", expect.recorded, call.recorded)
    if "consent" in given:
        differs("consent", expect.consent, call.consent)
    if "reason" in given:
        differs("the hangup reason", expect.reason, call.reason)
    if "agent" in given:
        differs("an agent answering", expect.agent, call.connected_to is not None)
    if "prompts" in given:
        differs("prompts", expect.prompts, call.prompts)
    if "path" in given:
        differs("path", expect.path, [s.describe() for s in call.path])
    if expect.decision is not None:
        got = call.decision or {}
        for key, wanted in expect.decision.items():
            differs(f"decision.{key}", wanted, got.get(key))


@dataclasses.dataclass
class FlowCoverage:
    flow: str
    branches: list[Step]
    missed: list[Step]


def coverage(config: Config, results: Iterable[CaseResult]) -> list[FlowCoverage]:
    """Per flow of ``config``'s numbers: its branches, and those no case against it took.

    Only the cases run against this config count (a case file may name its
    own ``config:``); :func:`configs_of` lists the configs a run used.
    """
    taken: dict[str, set[Step]] = {}
    for r in results:
        if r.config.source != config.source:
            continue
        number = config.numbers.get(r.case.dial)
        if number is not None:
            taken.setdefault(number.flow, set()).update(r.path)
    flows = sorted({n.flow for n in config.numbers.values()})
    out = []
    for flow_id in flows:
        every = compliance.branches(config.flows[flow_id])
        seen = taken.get(flow_id, set())
        out.append(FlowCoverage(flow_id, every, [b for b in every if b not in seen]))
    return out


def configs_of(results: Iterable[CaseResult]) -> list[Config]:
    """The configs the cases ran against, in the order first used."""
    seen: dict[str, Config] = {}
    for r in results:
        seen.setdefault(r.config.source, r.config)
    return list(seen.values())


def case_files(paths: Sequence[Path]) -> list[Path]:
    """The ``.yaml``/``.yml`` files named, and those in the folders named, sorted."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found += sorted(q for q in p.iterdir() if q.suffix in (".yaml", ".yml"))
        else:
            found.append(p)
    return found


def default_cases(config_path: Path | None) -> list[Path]:
    """Where a config's cases are: ``flows/tests/`` beside it; the demo's ship with it."""
    if config_path is None:
        return [Path(__file__).resolve().parent.parent / "demo_flow_tests.yaml"]
    folder = config_path.parent / "flows" / "tests"
    return case_files([folder]) if folder.is_dir() else []


def run_files(
    files: Sequence[Path],
    config_path: Path | None,
    *,
    prove: bool = True,
    tts_cache: Path | None = None,
    on_result: Any = None,
) -> tuple[Config, list[CaseResult]]:
    """Every case of ``files``: against a file's own ``config:``, else ``config_path``."""
    config = load_config(config_path)
    results: list[CaseResult] = []
    for f in files:
        loaded = load_cases(f)
        cfg = config
        if loaded.config is not None:
            cfg = load_config((f.parent / loaded.config).resolve())
        for case in loaded.cases:
            r = run_case(cfg, case, str(f), tts_cache=tts_cache, prove=prove)
            results.append(r)
            if on_result is not None:
                on_result(r)
    return config, results


def elapsed(t0: float) -> float:
    return time.perf_counter() - t0
