"""Scenarios: who calls, how often, how each caller behaves, and what must hold.

A scenario is one YAML file, validated like the server's config
(:mod:`ivr.config`): pydantic checks each part's shape, then the cross checks
run (codec and rate, behaviour options that do not fit the behaviour's kind,
objectives on metrics that do not exist, a talk file that is missing), and
every problem is reported at once with its dotted path in the file, e.g.
``mix.refuse.after_s: only an early_hangup behaviour takes after_s``.

:func:`plan` turns a scenario into the list of calls to place: which
behaviour, when (a linear ramp up to ``arrival.rate_cps``, then steady), to
which number, from which caller id, with which seed. The plan depends only on
the scenario (and its seed), so a run can be replayed exactly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ivr.e164 import DTMF_DIGITS, is_e164
from ivr.errors import Problem
from ivr.load.audio import CODEC_RATES
from ivr.load.errors import InvalidScenario
from ivr.load.metrics import COUNTS, DISTRIBUTIONS, STATISTICS

SCENARIOS_DIR = Path(__file__).resolve().parent.parent.parent / "scenarios"

Kind = Literal["consent", "refuse", "silent", "invalid", "early_hangup", "agent_hangup", "hold"]
KINDS: dict[str, str] = {
    "consent": "press the consent digit at the menu, talk, hang up: recorded",
    "refuse": "press the refusal digit at the menu, talk, hang up: not recorded",
    "silent": "press nothing; wait for the flow to connect, talk, hang up: not recorded",
    "invalid": "press a digit the menu does not offer, every time it plays: not recorded",
    "early_hangup": "hang up while the first prompt plays: not recorded",
    "agent_hangup": "consent, then talk until the agent hangs up: recorded",
    "hold": "talk from 'answered' on, expecting no flow (bare servers, benchmarks)",
}
DEFAULT_DIGIT = {"consent": "1", "agent_hangup": "1", "refuse": "2", "invalid": "9"}
EXPECT_RECORDED = {"consent": True, "agent_hangup": True}
PRESSES = ("consent", "refuse", "invalid", "agent_hangup")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


PositiveS = Annotated[float, Field(ge=0, le=86400)]


class Behaviour(_Strict):
    """One entry of the mix: a kind of caller and how much of the traffic it is."""

    kind: Kind
    weight: Annotated[float, Field(gt=0, le=1e6)] = 1.0
    to: str | None = None
    digit: str | None = None
    press_after_s: PositiveS = 0.5
    after_s: PositiveS | None = None
    wait_s: Annotated[float, Field(gt=0, le=86400)] | None = None
    expect_recorded: bool | None = None

    @property
    def digit_to_press(self) -> str | None:
        return self.digit if self.digit is not None else DEFAULT_DIGIT.get(self.kind)

    @property
    def recorded(self) -> bool | None:
        """Whether the server must record this caller (None: not checked)."""
        if self.expect_recorded is not None:
            return self.expect_recorded
        if self.kind == "hold":
            return None
        return EXPECT_RECORDED.get(self.kind, False)

    @property
    def hangup_after_s(self) -> float:
        return self.after_s if self.after_s is not None else 1.0

    @property
    def agent_wait_s(self) -> float:
        return self.wait_s if self.wait_s is not None else 60.0


class Arrival(_Strict):
    """New calls per second: ramped linearly from 0 over ``ramp_s``, then steady."""

    rate_cps: Annotated[float, Field(gt=0, le=10000)] = 10.0
    ramp_s: PositiveS = 0.0


class Talk(_Strict):
    """What a connected caller says, and for how long."""

    seconds: PositiveS = 2.0
    audio: Annotated[str, Field(min_length=1)] = "noise"
    tail_ms: Annotated[int, Field(ge=0, le=5000)] = 200


class Dtmf(_Strict):
    """How digits are sent: ``message`` (out of band) or ``inband`` tones in the audio."""

    mode: Literal["message", "inband"] = "message"
    duration_ms: Annotated[int, Field(ge=40, le=2000)] = 100
    level_dbm0: Annotated[float, Field(ge=-40, le=0)] = -10.0


class Agents(_Strict):
    """Virtual agents signed in on ``/v1/agent`` for a team (people, as the server sees them)."""

    team: Annotated[str, Field(min_length=1)]
    count: Annotated[int, Field(ge=1, le=10000)] = 1
    answer_after_s: PositiveS = 0.5
    hangup_after_s: Annotated[float, Field(gt=0, le=86400)] = 5.0


class Threshold(_Strict):
    """Upper (and, for counts, lower) bounds on one metric."""

    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    p999: float | None = None
    max: float | None = None
    min: float | None = None

    def bounds(self) -> list[tuple[str, float]]:
        return [(k, v) for k, v in self.model_dump().items() if v is not None]


class StoreOutage(_Strict):
    """The store refuses every write from ``at_s`` into the run, for ``for_s``."""

    at_s: PositiveS
    for_s: Annotated[float, Field(gt=0, le=3600)]


class Faults(_Strict):
    """What the simulator injects on purpose (``ivr simulate`` only; ``ivr load`` refuses them).

    Frames are the callers' audio on its way in; a caller who stops reading
    takes nothing more from the switch (audio or messages) from
    ``stop_reading_after_s`` after it was answered.
    """

    frame_loss_percent: Annotated[float, Field(ge=0, le=100)] = 0.0
    late_frame_percent: Annotated[float, Field(ge=0, le=100)] = 0.0
    late_ms: Annotated[int, Field(ge=1, le=5000)] = 60
    stop_reading_percent: Annotated[float, Field(ge=0, le=100)] = 0.0
    stop_reading_after_s: PositiveS = 3.0
    store_outage: StoreOutage | None = None


class ScenarioSpec(_Strict):
    """The validated content of a scenario file."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    description: str = ""
    to: str
    # Caller ids are this prefix and the call's index on 7 digits: at most 15 digits (E.164).
    from_prefix: Annotated[str, Field(pattern=r"^\+[1-9][0-9]{0,6}$")] = "+1555"
    codec: Literal["pcm_s16le", "pcmu", "pcma"] = "pcm_s16le"
    rate: Literal[8000, 16000] = 8000
    calls: Annotated[int, Field(ge=1, le=1_000_000)]
    concurrency: Annotated[int, Field(ge=1, le=100_000)]
    arrival: Arrival = Arrival()
    menu_node: Annotated[str, Field(min_length=1)] = "consent"
    talk: Talk = Talk()
    dtmf: Dtmf = Dtmf()
    mix: Annotated[dict[str, Behaviour], Field(min_length=1)]
    agents: Agents | None = None
    seed: int = 1
    processes: Annotated[int, Field(ge=0, le=64)] | None = None
    call_timeout_s: Annotated[float, Field(gt=0, le=86400)] = 120.0
    verify: bool = True
    objectives: dict[str, Threshold] = {}
    faults: Faults | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    """A scenario ready to run: its spec, where it came from, and its talk file if any."""

    source: str
    spec: ScenarioSpec
    data: Mapping[str, Any] = field(default_factory=dict)
    talk_file: Path | None = None

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True, slots=True)
class CallPlan:
    """One call to place."""

    index: int
    behaviour: str
    at_s: float  # from the start of the run
    to: str
    caller_id: str
    seed: int


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc)


def _problems(exc: ValidationError) -> list[Problem]:
    seen: dict[str, Problem] = {}
    for err in exc.errors(include_url=False):
        loc = tuple(str(p) for p in err["loc"])
        # pydantic names the branch of a constrained optional (``float``); drop it.
        while loc and loc[-1] in ("float", "constrained-float", "function-after[...]"):
            loc = loc[:-1]
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        seen.setdefault(_loc(loc), Problem(_loc(loc), msg))
    return list(seen.values())


def _normalise_mix(data: dict[str, Any], problems: list[Problem]) -> dict[str, Any]:
    """Weights alone become ``{weight}``; an entry named after a kind gets that kind."""
    mix = data.get("mix")
    if not isinstance(mix, dict):
        return data
    out: dict[str, Any] = {}
    for name, entry in mix.items():
        key = str(name)
        if isinstance(entry, int | float) and not isinstance(entry, bool):
            entry = {"weight": entry}
        if isinstance(entry, dict) and "kind" not in entry:
            if key in KINDS:
                entry = {**entry, "kind": key}
            else:
                problems.append(
                    Problem(
                        f"mix.{key}.kind",
                        f"{key!r} is not a behaviour: name the entry after one, or give it "
                        f"a kind ({', '.join(KINDS)})",
                    )
                )
                continue
        out[key] = entry
    return {**data, "mix": out}


def _check_number(path: str, value: Any, problems: list[Problem]) -> None:
    if isinstance(value, int) and not isinstance(value, bool):
        problems.append(
            Problem(
                path,
                f'write the number in quotes, e.g. "+{value}": YAML reads an '
                "unquoted +number as an integer",
            )
        )


def _cross_check(spec: ScenarioSpec, base_dir: Path) -> tuple[list[Problem], Path | None]:
    problems: list[Problem] = []
    if spec.rate not in CODEC_RATES[spec.codec]:
        rates = " or ".join(str(r) for r in CODEC_RATES[spec.codec])
        problems.append(Problem("rate", f"codec {spec.codec} runs at {rates} Hz, not {spec.rate}"))
    if not is_e164(spec.to):
        problems.append(Problem("to", "not an E.164 number (a + then 2 to 15 digits)"))
    talk_file: Path | None = None
    if spec.talk.audio != "noise":
        talk_file = (base_dir / spec.talk.audio).resolve()
        if not talk_file.is_file():
            problems.append(
                Problem(
                    "talk.audio",
                    f"no such file {spec.talk.audio!r}: give a WAV file "
                    "(relative to the scenario) or 'noise'",
                )
            )
    for name, b in spec.mix.items():
        where = f"mix.{name}"
        if b.to is not None and not is_e164(b.to):
            problems.append(Problem(f"{where}.to", "not an E.164 number"))
        if b.digit is not None:
            if b.kind not in PRESSES:
                problems.append(Problem(f"{where}.digit", f"a {b.kind} caller presses no digit"))
            elif len(b.digit) != 1 or b.digit not in DTMF_DIGITS:
                problems.append(Problem(f"{where}.digit", f"one DTMF digit of {DTMF_DIGITS}"))
        if b.after_s is not None and b.kind != "early_hangup":
            problems.append(
                Problem(f"{where}.after_s", "only an early_hangup behaviour takes after_s")
            )
        if b.wait_s is not None and b.kind != "agent_hangup":
            problems.append(
                Problem(f"{where}.wait_s", "only an agent_hangup behaviour takes wait_s")
            )
        if b.kind == "hold" and b.expect_recorded is not None:
            problems.append(
                Problem(f"{where}.expect_recorded", "a hold caller's recording is not checked")
            )
    for metric, threshold in spec.objectives.items():
        where = f"objectives.{metric}"
        if metric in DISTRIBUTIONS:
            allowed: tuple[str, ...] = STATISTICS
        elif metric in COUNTS:
            allowed = ("max", "min")
        else:
            problems.append(
                Problem(
                    where,
                    f"no metric {metric!r}; use one of {', '.join([*DISTRIBUTIONS, *COUNTS])}",
                )
            )
            continue
        bounds = threshold.bounds()
        if not bounds:
            problems.append(Problem(where, f"give at least one bound ({', '.join(allowed)})"))
        for key, value in bounds:
            if key not in allowed:
                problems.append(
                    Problem(f"{where}.{key}", f"{metric} takes {', '.join(allowed)}, not {key}")
                )
            elif value < 0:
                problems.append(Problem(f"{where}.{key}", "must be 0 or more"))
    return problems, talk_file


def parse_scenario(
    data: Any, source: str, base_dir: Path, overrides: Mapping[str, Any] | None = None
) -> Scenario:
    """Validate scenario data already read from YAML; :class:`InvalidScenario` lists all problems.

    ``overrides`` (from the command line: ``calls``, ``concurrency``, ``seed``,
    ``processes``) replace the file's values before validation, so they are
    checked the same way.
    """
    if not isinstance(data, dict):
        raise InvalidScenario(
            source, [Problem("", "a scenario must be a mapping at the top level")]
        )
    data = {**data, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    problems: list[Problem] = []
    _check_number("to", data.get("to"), problems)
    if isinstance(data.get("mix"), dict):
        for name, entry in data["mix"].items():
            if isinstance(entry, dict):
                _check_number(f"mix.{name}.to", entry.get("to"), problems)
    data = _normalise_mix(data, problems)
    spec: ScenarioSpec | None = None
    try:
        spec = ScenarioSpec.model_validate(data)
    except ValidationError as exc:
        problems.extend(_problems(exc))
    talk_file: Path | None = None
    if spec is not None:
        more, talk_file = _cross_check(spec, base_dir)
        problems.extend(more)
    if problems or spec is None:
        # The first message per path: a quoting hint beats pydantic's type error.
        unique: dict[str, Problem] = {}
        for p in problems:
            unique.setdefault(p.path, p)
        raise InvalidScenario(source, list(unique.values()))
    return Scenario(source, spec, dict(data), talk_file)


def load_scenario(path: Path, overrides: Mapping[str, Any] | None = None) -> Scenario:
    """Read and validate a scenario file."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidScenario(
            source, [Problem("", f"cannot read the file: {exc.strerror}")]
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InvalidScenario(source, [Problem(where, f"not valid YAML: {exc}")]) from exc
    return parse_scenario(data, source, path.parent, overrides)


def arrival_time(index: int, arrival: Arrival) -> float:
    """When call ``index`` (from 0) is placed: the rate ramps linearly over ``ramp_s``."""
    r, ramp = arrival.rate_cps, arrival.ramp_s
    in_ramp = r * ramp / 2  # calls placed during the ramp
    if ramp > 0 and index < in_ramp:
        return math.sqrt(2 * ramp * index / r)
    return ramp + (index - in_ramp) / r


def caller_id(prefix: str, index: int) -> str:
    """A distinct E.164 caller id per call: the prefix, then the index on 7 digits or more."""
    return f"{prefix}{index:07d}"


def plan(scenario: Scenario) -> list[CallPlan]:
    """Every call of the run, in order of placing (deterministic for a seed)."""
    spec = scenario.spec
    rng = random.Random(spec.seed)
    names = list(spec.mix)
    weights = [spec.mix[n].weight for n in names]
    calls = []
    for i in range(spec.calls):
        name = rng.choices(names, weights)[0]
        calls.append(
            CallPlan(
                index=i,
                behaviour=name,
                at_s=arrival_time(i, spec.arrival),
                to=spec.mix[name].to or spec.to,
                caller_id=caller_id(spec.from_prefix, i),
                seed=(spec.seed * 1_000_003 + i) & 0x7FFFFFFF,
            )
        )
    return calls
