"""The flow compliance checker (docs/compliance.md), against a library of flows and the engine.

The library is ``tests/ivr/flows/library/*.yaml``: each file is one flow with the
number settings it runs under and the exact violations expected (rule, path,
message). ``ok_*`` files are compliant, ``bad_*`` files are refused. The
property tests at the end drive the real engine (:class:`ivr.flows.CallFlow`)
through random small flows: whatever the engine can do that breaks a rule, the
checker reports; whatever the checker reports, the engine can be made to do.
"""

from __future__ import annotations

import copy
import dataclasses
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr.config import NumberConfig, load_config
from ivr.flows import (
    MENU_TIMER,
    RING_TIMER,
    AgentAnswered,
    CallAnswered,
    CallFlow,
    DigitReceived,
    Event,
    Flow,
    LogConsent,
    LogNotice,
    MenuNode,
    MessageNode,
    NumberPolicy,
    PlaybackFinished,
    Ring,
    RingNode,
    TimerExpired,
    validate_flow,
)
from ivr.flows.compliance import (
    RECORDING_RULES,
    RULES,
    Violation,
    check_all,
    check_flow,
    check_number,
    format_violations,
)
from tests.ivr.test_purity import ROOT, forbidden, imported_modules

FLOWS_DIR = Path(__file__).with_name("library")
NUMBER = "+15550100"

# ------------------------------------------------------------------- helpers


def make_flow(data: dict[str, Any], flow_id: str = "f") -> Flow:
    """A flow built through the real validator; the test fails if it is refused."""
    flow, problems = validate_flow(flow_id, data)
    assert problems == []
    assert flow is not None
    return flow


def make_number(
    flow_id: str,
    *,
    recording: bool = True,
    transcription: bool = False,
    consent_mode: Literal["opt_in", "notice"] = "opt_in",
) -> NumberConfig:
    return NumberConfig(
        name="test",
        flow=flow_id,
        recording=recording,
        transcription=transcription,
        consent_mode=consent_mode,
    )


@dataclass(frozen=True)
class Case:
    """One file of the library."""

    name: str
    number: NumberConfig
    flow: Flow
    expected: list[tuple[str, tuple[str, ...], str]]


def load_case(path: Path) -> Case:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert set(data) == {"description", "number", "flow", "violations"}, path.name
    flow = make_flow(data["flow"], path.stem)
    number = NumberConfig(name=path.stem, flow=path.stem, **data["number"])
    expected = [(v["rule"], tuple(v["path"]), v["message"]) for v in data["violations"]]
    return Case(path.stem, number, flow, expected)


CASE_FILES = sorted(FLOWS_DIR.glob("*.yaml"))
CASES = {p.stem: load_case(p) for p in CASE_FILES}


def found(violations: list[Violation]) -> list[tuple[str, tuple[str, ...], str]]:
    return [(v.rule, v.path, v.message) for v in violations]


# --------------------------------------------------------------- the library


def test_library_holds_compliant_and_refused_flows() -> None:
    ok = [n for n in CASES if n.startswith("ok_")]
    bad = [n for n in CASES if n.startswith("bad_")]
    assert len(ok) >= 10
    assert len(bad) >= 15
    assert sorted(ok + bad) == sorted(CASES)  # every file is one or the other
    assert all(CASES[n].expected == [] for n in ok)
    assert all(CASES[n].expected != [] for n in bad)
    # Every rule but unknown_flow (a number's, not a flow's) has at least one example.
    shown = {rule for case in CASES.values() for rule, _, _ in case.expected}
    assert shown == set(RULES) - {"unknown_flow"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_library_flow(name: str) -> None:
    """Each flow gets exactly its expected violations: rule, path and message."""
    case = CASES[name]
    assert found(check_number(NUMBER, case.number, case.flow)) == case.expected


@pytest.mark.parametrize("name", sorted(CASES))
def test_library_flow_through_check_all(name: str) -> None:
    case = CASES[name]
    violations = check_all({NUMBER: case.number}, {case.flow.id: case.flow})
    assert violations == check_number(NUMBER, case.number, case.flow)
    assert all(v.number == NUMBER and v.flow == name for v in violations)


@pytest.mark.parametrize("name", sorted(CASES))
def test_library_paths_follow_the_flow(name: str) -> None:
    """Every path starts at the start node and steps along the flow's edges."""
    case = CASES[name]
    for v in check_number(NUMBER, case.number, case.flow):
        if v.rule == "unreachable":
            assert len(v.path) == 1
            continue
        assert v.path[0] == case.flow.start
        for a, b in zip(v.path, v.path[1:], strict=False):
            assert b in targets(case.flow, a), (a, b)


def targets(flow: Flow, node_id: str) -> set[str]:
    """Every node the flow names as a way out of ``node_id`` (a menu may replay itself)."""
    data = flow.definition()["nodes"][node_id]
    out = {data.get(k) for k in ("next", "on_timeout", "on_no_answer", "on_invalid")}
    out.update(o["next"] for o in data.get("options", {}).values())
    if data["type"] == "menu":
        out.add(node_id)
    return {t for t in out if isinstance(t, str)}


# ----------------------------------------------------------- the demo config


def test_shipped_demo_config_is_compliant() -> None:
    config = load_config()
    assert check_all(config.numbers, config.flows) == []


@pytest.mark.parametrize("number_id", sorted(load_config().numbers))
def test_each_demo_number_is_compliant(number_id: str) -> None:
    config = load_config()
    number = config.numbers[number_id]
    assert check_number(number_id, number, config.flows[number.flow]) == []


def test_demo_private_number_is_compliant_only_because_its_switch_is_off() -> None:
    """+15550199's flow has no notice; with recording on, the checker refuses it."""
    config = load_config()
    private = config.numbers["+15550199"]
    switched_on = private.model_copy(update={"recording": True})
    violations = check_number("+15550199", switched_on, config.flows[private.flow])
    assert found(violations) == [
        (
            "recording_notice",
            ("welcome", "line"),
            "line 'line' records without a recording notice before it",
        )
    ]


@pytest.mark.parametrize(
    ("number_id", "rule", "path"),
    [
        ("+15550100", "ai_notice", ("notice", "consent", "recorded")),
        ("+15550101", "recording_notice", ("notice", "line")),
    ],
)
def test_demo_flows_with_a_notice_removed_are_refused(
    number_id: str, rule: str, path: tuple[str, ...]
) -> None:
    config = load_config()
    number = config.numbers[number_id]
    data = config.flows[number.flow].definition()
    kind = "ai" if rule == "ai_notice" else "recording"
    data["nodes"]["notice"]["notice"].remove(kind)
    flow = make_flow(data, number.flow)
    assert [(v.rule, v.path) for v in check_number(number_id, number, flow)] == [(rule, path)]


# --------------------------------------------------------- the API's details

CONSENT = CASES["ok_opt_in_consent"].flow


def test_switch_off_still_checks_the_structure() -> None:
    """Rule 4 is about the flow, not recording: it holds with the switch off too."""
    case = CASES["bad_pause_resume_loop"]
    off = case.number.model_copy(update={"recording": False})
    assert found(check_number(NUMBER, off, case.flow)) == case.expected


def test_switch_off_skips_every_recording_rule() -> None:
    for case in CASES.values():
        off = case.number.model_copy(update={"recording": False})
        rules = {v.rule for v in check_number(NUMBER, off, case.flow)}
        assert not rules & RECORDING_RULES, case.name


def test_notice_mode_needs_no_consent_choice() -> None:
    """The same flow without any consent option: refused in opt_in, fine in notice mode."""
    data = CONSENT.definition()
    for option in data["nodes"]["consent"]["options"].values():
        option["consent"] = None
    flow = make_flow(data, "no_choice")
    opt_in = check_number(NUMBER, make_number("no_choice"), flow)
    assert [(v.rule, v.path) for v in opt_in] == [("consent", ("notice", "consent", "recorded"))]
    assert opt_in[0].message == (
        "line 'recorded' records in opt_in mode, but the caller never chose an option "
        "that grants consent"
    )
    assert check_number(NUMBER, make_number("no_choice", consent_mode="notice"), flow) == []


def test_transcription_off_needs_no_ai_notice() -> None:
    case = CASES["bad_transcription_without_ai_notice"]
    off = case.number.model_copy(update={"transcription": False})
    assert check_number(NUMBER, off, case.flow) == []


def test_recording_line_at_the_start_has_a_one_node_path() -> None:
    flow = make_flow(
        {
            "start": "line",
            "nodes": {
                "line": {"type": "ring", "team": "t", "record": True, "on_no_answer": "bye"},
                "bye": {"type": "hangup"},
            },
        }
    )
    violations = check_number(NUMBER, make_number("f", consent_mode="notice"), flow)
    assert [(v.rule, v.path) for v in violations] == [("recording_notice", ("line",))]


def test_a_line_that_does_not_record_needs_nothing() -> None:
    data = CASES["bad_switch_on_no_notice"].flow.definition()
    data["nodes"]["line"]["record"] = False
    data["nodes"]["vm"]["record"] = False
    assert check_number(NUMBER, make_number("f"), make_flow(data)) == []


def test_one_violation_per_rule_and_node_with_the_shortest_path() -> None:
    """Many paths reach the line without a notice; the shortest one is reported, once."""
    flow = make_flow(
        {
            "start": "a",
            "nodes": {
                "a": {"type": "message", "prompt": "p", "next": "b"},
                "b": {
                    "type": "menu",
                    "prompt": "p",
                    "options": {"1": {"next": "c"}, "2": {"next": "line"}},
                    "retries": 0,
                    "on_timeout": "bye",
                },
                "c": {"type": "message", "prompt": "p", "next": "line"},
                "line": {"type": "ring", "team": "t", "record": True, "on_no_answer": "bye"},
                "bye": {"type": "hangup"},
            },
        }
    )
    violations = check_number(NUMBER, make_number("f", consent_mode="notice"), flow)
    assert [(v.rule, v.path) for v in violations] == [("recording_notice", ("a", "b", "line"))]


def test_silent_loop_entered_later_is_reported_once_with_its_way_in() -> None:
    flow = make_flow(
        {
            "start": "a",
            "nodes": {
                "a": {
                    "type": "menu",
                    "prompt": "p",
                    "options": {"1": {"next": "r1"}, "2": {"next": "p2"}},
                    "retries": 0,
                    "on_timeout": "bye",
                },
                "p1": {"type": "pause_recording", "next": "r1"},
                "r1": {"type": "resume_recording", "next": "p2"},
                "p2": {"type": "pause_recording", "next": "p1"},
                "bye": {"type": "hangup"},
            },
        }
    )
    assert [(v.rule, v.path) for v in check_flow(flow)] == [
        ("silent_loop", ("a", "r1", "p2", "p1", "r1"))
    ]


def test_pause_then_resume_once_is_not_a_loop() -> None:
    assert check_flow(CASES["ok_sensitive_gather"].flow) == []


def test_check_flow_needs_no_number() -> None:
    case = CASES["bad_unreachable_node"]
    violations = check_flow(case.flow)
    assert [(v.number, v.rule, v.path) for v in violations] == [
        ("", "unreachable", ("voicemail_offer",))
    ]
    assert str(violations[0]) == (
        "flow bad_unreachable_node: [unreachable] node 'voicemail_offer' is never reached "
        "from the start node 'notice' (path: voicemail_offer)"
    )


def test_check_all_names_a_missing_flow() -> None:
    violations = check_all({NUMBER: make_number("nowhere")}, {})
    assert violations == [
        Violation(
            NUMBER,
            "nowhere",
            "unknown_flow",
            (),
            "the number uses flow 'nowhere', which does not exist",
        )
    ]


def test_check_all_covers_every_number_in_a_stable_order() -> None:
    bad = CASES["bad_timeout_into_recording"]
    numbers = {
        "+15550300": bad.number,
        "+15550200": bad.number,
        "+15550100": make_number(CONSENT.id, transcription=True),
        "+15550400": bad.number.model_copy(update={"recording": False}),
    }
    flows = {bad.flow.id: bad.flow, CONSENT.id: CONSENT}
    violations = check_all(numbers, flows)
    assert [(v.number, v.rule) for v in violations] == [
        ("+15550200", "default_branch"),
        ("+15550300", "default_branch"),
    ]
    assert check_all(dict(reversed(numbers.items())), flows) == violations


def test_violation_is_frozen() -> None:
    v = Violation(NUMBER, "f", "consent", ("a",), "m")
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.rule = "other"  # type: ignore[misc]
    assert hash(v) == hash(Violation(NUMBER, "f", "consent", ("a",), "m"))


def test_format_violations() -> None:
    case = CASES["bad_diamond_notice_one_branch"]
    text = format_violations(check_number(NUMBER, case.number, case.flow))
    assert text == (
        "1 compliance violation(s):\n"
        "  number +15550100, flow bad_diamond_notice_one_branch: [recording_notice] "
        "line 'recorded' records without a recording notice before it\n"
        "    path: welcome -> info_b -> join -> recorded"
    )


def test_format_no_violations() -> None:
    assert format_violations([]) == "no compliance violations: every flow checked is compliant"


def test_compliance_module_is_pure() -> None:
    """Pure like the engine: no I/O module, and only the standard library and ivr.flows."""
    relpath = "ivr/flows/compliance.py"
    source = (ROOT / relpath).read_text(encoding="utf-8")
    assert forbidden(relpath, source) == []
    roots = {m.split(".")[0] for m in imported_modules(source, relpath)}
    assert roots <= {"__future__", "collections", "dataclasses", "typing", "ivr"}
    ivr_modules = {m for m in imported_modules(source, relpath) if m.split(".")[0] == "ivr"}
    assert {m.rsplit(".", 1)[0] for m in ivr_modules} <= {"ivr", "ivr.flows", "ivr.flows.nodes"}


# ------------------------------------------------ random flows and the engine

NodeKind = Literal["message", "menu", "ring", "hangup"]


@st.composite
def random_flows(draw: st.DrawFn, *, other_on_invalid: bool) -> tuple[Flow, NumberConfig]:
    """A small flow of the node types the engine runs, and a number with recording on.

    With ``other_on_invalid`` false, a menu's invalid key only replays the menu
    (the engine's retry count is then exactly what the checker assumes).
    """
    size = draw(st.integers(2, 6))
    ids = [f"n{i}" for i in range(size)]
    node_id = st.sampled_from(ids)
    nodes: dict[str, dict[str, Any]] = {}
    for nid in ids:
        kind: NodeKind = draw(
            st.sampled_from(["message", "message", "menu", "menu", "ring", "hangup"])
        )
        if kind == "message":
            notice = draw(st.sampled_from([[], [], ["recording"], ["ai"], ["recording", "ai"]]))
            nodes[nid] = {"type": "message", "prompt": "p", "notice": notice, "next": draw(node_id)}
        elif kind == "menu":
            digits = draw(st.lists(st.sampled_from("123"), min_size=1, max_size=3, unique=True))
            options = {
                d: {
                    "next": draw(node_id),
                    "consent": draw(st.sampled_from([None, None, "granted", "refused"])),
                }
                for d in digits
            }
            on_invalid = draw(st.one_of(st.none(), node_id)) if other_on_invalid else None
            nodes[nid] = {
                "type": "menu",
                "prompt": "p",
                "options": options,
                "retries": draw(st.integers(0, 2)),
                "on_timeout": draw(node_id),
                "on_invalid": on_invalid,
            }
        elif kind == "ring":
            nodes[nid] = {
                "type": "ring",
                "team": "t",
                "record": draw(st.booleans()),
                "on_no_answer": draw(node_id),
            }
        else:
            nodes[nid] = {"type": "hangup"}
    flow = make_flow({"start": "n0", "nodes": nodes}, "random")
    number = make_number(
        "random",
        transcription=draw(st.booleans()),
        consent_mode=draw(st.sampled_from(["opt_in", "notice"])),
    )
    return flow, number


@dataclass
class Walker:
    """The real engine on one call, and what its actions prove about the call so far."""

    engine: CallFlow
    flow: Flow
    number: NumberConfig
    heard: set[str] = field(default_factory=set)
    consent: str | None = None
    informed: bool = False  # the last consent choice came after the recording notice
    default: bool = False  # the last branch since the last valid menu key was a default one
    broken: set[tuple[str, str]] = field(default_factory=set)  # (rule, line) seen broken

    @classmethod
    def start(cls, flow: Flow, number: NumberConfig) -> Walker:
        policy = NumberPolicy(
            recording=number.recording,
            transcription=number.transcription,
            consent_mode=number.consent_mode,
            record_percent=100,
            sample_draw=0.0,
        )
        walker = cls(CallFlow(flow, policy), flow, number)
        walker.feed(CallAnswered())
        return walker

    def feed(self, event: Event) -> None:
        node = self.flow.nodes.get(self.engine.node)
        if isinstance(event, DigitReceived) and isinstance(node, MenuNode):
            if self.engine.phase in ("playing", "waiting"):
                self.default = event.digit not in node.options
        elif isinstance(event, TimerExpired):
            self.default = True
        self.engine.receive(event)
        for action in self.engine.actions_to_take():
            if isinstance(action, LogNotice):
                self.heard.update(action.kinds)
            elif isinstance(action, LogConsent):
                self.consent = action.decision
                self.informed = "recording" in self.heard
            elif isinstance(action, Ring) and action.decision.line_records:
                self.broken.update((rule, action.line) for rule in self.breaks(action))

    def breaks(self, ring: Ring) -> list[str]:
        """The rules broken by entering this recording line now, as the call's history shows."""
        rules = []
        if "recording" not in self.heard:
            rules.append("recording_notice")
        # opt_in needs an informed grant; notice mode would record despite a refusal.
        informed_grant = self.consent == "granted" and self.informed
        if self.consent == "refused" or (
            self.number.consent_mode == "opt_in" and not informed_grant
        ):
            rules.append("consent")
        if self.number.transcription and "ai" not in self.heard:
            rules.append("ai_notice")
        if self.default:
            rules.append("default_branch")
        if ring.decision.record:  # what the engine itself enforces, whatever the flow
            assert "recording" in self.heard or self.number.consent_mode == "opt_in"
            assert self.consent == "granted" or self.number.consent_mode == "notice"
        return rules

    def legal_events(self, rng: random.Random) -> list[Event]:
        phase, node_id = self.engine.phase, self.engine.node
        digit = DigitReceived(rng.choice("1234"))
        if phase == "playing":
            return [PlaybackFinished(node_id), digit]
        if phase == "waiting":
            return [digit, TimerExpired(MENU_TIMER)]
        if phase == "ringing":
            return [AgentAnswered("bot"), TimerExpired(RING_TIMER), TimerExpired(RING_TIMER)]
        return []  # connected or ended: nothing about recording can change any more


def random_walks(flow: Flow, number: NumberConfig, seed: int) -> set[tuple[str, str]]:
    """The rules the engine breaks on 40 random calls of at most 40 events."""
    rng = random.Random(seed)
    broken: set[tuple[str, str]] = set()
    for _ in range(40):
        walker = Walker.start(flow, number)
        for _ in range(40):
            events = walker.legal_events(rng)
            if not events:
                break
            walker.feed(rng.choice(events))
        broken |= walker.broken
    return broken


@settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(case=random_flows(other_on_invalid=True), seed=st.integers(0, 2**32 - 1))
def test_whatever_the_engine_does_wrong_the_checker_reports(
    case: tuple[Flow, NumberConfig], seed: int
) -> None:
    """Soundness: a flow the checker calls compliant never records wrongly on the engine.

    Random calls (digits, timers, playback ends, agents answering) through the
    real engine: each time a recording line is entered without the recording
    notice, without informed consent (opt_in), without the AI notice
    (transcription) or after a default branch, the checker reported that rule
    at that line.
    """
    flow, number = case
    reported = {
        (v.rule, v.path[-1])
        for v in check_number(NUMBER, number, flow)
        if v.rule in RECORDING_RULES
    }
    assert random_walks(flow, number, seed) <= reported


def witness(walker: Walker, flow: Flow, path: tuple[str, ...]) -> Iterator[Walker]:
    """Every engine run (as a walker) that follows ``path`` node by node.

    A step from a menu is one of its keys that leads there, or timeouts until
    the menu gives up (each timeout replays it while retries remain).
    """
    if len(path) == 1:
        yield walker
        return
    here, there = path[0], path[1]
    node = flow.nodes[here]
    steps: list[list[Event]] = []
    if isinstance(node, MessageNode):
        steps.append([PlaybackFinished(here)])
    elif isinstance(node, RingNode):
        steps.append([TimerExpired(RING_TIMER)])
    elif isinstance(node, MenuNode):
        steps += [[DigitReceived(d)] for d, o in node.options.items() if o.next == there]
        misses = 1 if there == here else node.retries + 1
        steps.append([PlaybackFinished(here), TimerExpired(MENU_TIMER)] * misses)
    for events in steps:
        branch = copy.deepcopy(walker, {id(flow): flow})
        moved = False
        for event in events:
            if moved and branch.engine.node == there:
                break
            if isinstance(event, PlaybackFinished) and branch.engine.phase != "playing":
                continue
            branch.feed(event)
            moved = not (isinstance(event, PlaybackFinished) and isinstance(node, MenuNode))
        if moved and branch.engine.node == there and branch.engine.phase != "ended":
            yield from witness(branch, flow, path[1:])


@settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(case=random_flows(other_on_invalid=False))
def test_every_reported_violation_happens_on_the_engine(case: tuple[Flow, NumberConfig]) -> None:
    """Precision: each recording violation's path is a real call on the engine that breaks it."""
    flow, number = case
    for v in check_number(NUMBER, number, flow):
        if v.rule not in RECORDING_RULES:
            continue
        start = Walker.start(flow, number)
        assert any((v.rule, v.path[-1]) in w.broken for w in witness(start, flow, v.path)), (
            format_violations([v])
        )
