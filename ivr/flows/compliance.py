"""Flow compliance: a static proof that a number's flow keeps callers' rights.

docs/compliance.md. Before a flow is used, this module walks *every* path of its
graph from the start node, not a sample of calls, and proves four rules:

1. ``recording_notice`` / ``consent``: no node that records (a ``ring`` or
   ``voicemail`` with ``record: true``) is reached without a ``notice:
   recording`` message played before it; in ``opt_in`` mode, only when the
   caller's last consent choice granted consent, *after* hearing that notice.
   In ``notice`` mode the engine does not ask, so a flow that offers a
   ``consent: refused`` option and then still reaches a recording node breaks
   the rule too: the caller's refusal would be ignored.
2. ``ai_notice``: on a number with transcription on, no recording node is
   reached without a ``notice: ai`` message before it.
3. ``default_branch``: a timeout, an invalid key, retries running out, a
   gather with no digits or a ring nobody answers never leads into recording
   unless the caller made an explicit menu choice after it.
4. ``unreachable`` / ``silent_loop``: every node can be reached from the start,
   and no path loops forever without playing a prompt or waiting for the
   caller (a cycle made only of ``pause_recording`` / ``resume_recording``).

Rules 1-3 only apply when the number's ``recording`` switch is on: with it off
nothing is ever recorded, whatever the flow says, so there is nothing to prove.
Rule 4 is about the flow itself and always applies.

How it is proved: the engine's only memory that matters here is small (which
notices were heard, the last consent choice and whether it came after the
recording notice, and whether the last branch since the last explicit menu
choice was a default one), so the check is a breadth-first search of the
product graph of (node, that memory). The graph is finite, so every path,
loops included, is covered; breadth-first order gives the shortest offending
path for each rule and node. The search over-approximates in one way only: it
assumes a menu's retry edges can always be taken, whereas the engine counts
retries; so it may report a path that needs one more retry than the menu
allows, but it never misses a path the engine can take.

The module is pure: no I/O, no clock, no event loop. It is one module of
about 480 lines because the four rules share the one search and its memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from ivr.flows import (
    Flow,
    GatherNode,
    MenuNode,
    MessageNode,
    Node,
    PauseRecordingNode,
    ResumeRecordingNode,
    RingNode,
    Step,
    VoicemailNode,
)


class NumberSettings(Protocol):
    """What the proof needs of a number (the config's ``NumberSettings`` has it)."""

    @property
    def flow(self) -> str: ...

    @property
    def recording(self) -> bool: ...

    @property
    def transcription(self) -> bool: ...

    @property
    def consent_mode(self) -> Literal["opt_in", "notice"]: ...


RULES: tuple[str, ...] = (
    "unknown_flow",
    "recording_notice",
    "consent",
    "ai_notice",
    "default_branch",
    "unreachable",
    "silent_loop",
)
"""Every rule name a :class:`Violation` may carry, in the order they are reported."""

RECORDING_RULES = frozenset({"recording_notice", "consent", "ai_notice", "default_branch"})
"""The rules that only apply when the number's recording switch is on."""


@dataclass(frozen=True)
class Violation:
    """One way a number's flow breaks a rule.

    ``path`` is the node ids in order from the start node to the offending
    node (for ``unreachable``, only the node; for ``silent_loop``, the way in
    and then the loop, ending on the node where it closes).
    """

    number: str
    flow: str
    rule: str
    path: tuple[str, ...]
    message: str

    def __str__(self) -> str:
        where = f"number {self.number}, flow {self.flow}" if self.number else f"flow {self.flow}"
        return f"{where}: [{self.rule}] {self.message} (path: {' -> '.join(self.path)})"


# ---------------------------------------------------------------- the graph

_EdgeKind = Literal["next", "option", "retry", "invalid", "timeout", "no_answer", "no_digits"]
_DEFAULT_KINDS = frozenset({"retry", "invalid", "timeout", "no_answer", "no_digits"})


@dataclass(frozen=True, slots=True)
class _Edge:
    """One way out of a node, as the engine can take it."""

    source: str
    target: str
    kind: _EdgeKind
    digit: str | None = None
    consent: Literal["granted", "refused"] | None = None

    @property
    def default(self) -> bool:
        """Whether the call takes this edge without the caller choosing it."""
        return self.kind in _DEFAULT_KINDS

    def describe(self) -> str:
        """The default branch in plain words (for a violation's message)."""
        s = self.source
        if self.kind == "retry":
            return f"menu {s!r} was offered again after a timeout or an invalid key"
        if self.kind == "invalid":
            return f"an invalid key at menu {s!r} went to its on_invalid node {self.target!r}"
        if self.kind == "timeout":
            return f"menu {s!r} timed out or ran out of retries (on_timeout)"
        if self.kind == "no_answer":
            return f"nobody answered at {s!r} (on_no_answer)"
        if self.kind == "no_digits":
            return f"no digits were entered at {s!r} (on_timeout)"
        return f"{s!r} went on to {self.target!r}"


def _edges(node_id: str, node: Node) -> list[_Edge]:
    """Every edge the engine can take out of a node, in the flow's order.

    A menu's invalid key goes to ``on_invalid`` (or replays the menu) only while
    retries remain, so with ``retries: 0`` that edge does not exist: both a
    timeout and an invalid key go straight to ``on_timeout``.
    """
    if isinstance(node, MessageNode | PauseRecordingNode | ResumeRecordingNode):
        return [_Edge(node_id, node.next, "next")]
    if isinstance(node, MenuNode):
        edges = [
            _Edge(node_id, opt.next, "option", digit=digit, consent=opt.consent)
            for digit, opt in node.options.items()
        ]
        if node.retries >= 1:
            if node.on_invalid is not None and node.on_invalid != node_id:
                edges.append(_Edge(node_id, node.on_invalid, "invalid"))
            edges.append(_Edge(node_id, node_id, "retry"))
        edges.append(_Edge(node_id, node.on_timeout, "timeout"))
        return edges
    if isinstance(node, RingNode):
        return [_Edge(node_id, node.on_no_answer, "no_answer")]
    if isinstance(node, GatherNode):
        return [_Edge(node_id, node.next, "next"), _Edge(node_id, node.on_timeout, "no_digits")]
    if isinstance(node, VoicemailNode):
        return [] if node.next is None else [_Edge(node_id, node.next, "next")]
    return []  # hangup: the path ends


def branches(flow: Flow) -> list[Step]:
    """Every branch a call can take in ``flow``, from its reachable nodes, in the flow's order.

    The edges the proof walks, as :class:`ivr.flows.Step` (what the engine
    lists a call's path in), and for each ring its ``answered``: a suite of
    flow tests covers the flow when its calls took every one of them.
    """
    found: list[Step] = []
    for node_id in _reachable(flow):
        node = flow.nodes[node_id]
        if isinstance(node, RingNode):
            found.append(Step(node_id, node_id, "answered"))
        found += [Step(e.source, e.target, e.kind, e.digit) for e in _edges(node_id, node)]
    return found


def _records(node: Node) -> bool:
    """Whether the line (or voicemail) asks to record; the number's switch decides the rest."""
    return isinstance(node, RingNode | VoicemailNode) and node.record


def _plays_or_waits(node: Node) -> bool:
    """Whether passing through the node takes the caller's time (a prompt, a wait, a ring)."""
    return not isinstance(node, PauseRecordingNode | ResumeRecordingNode)


def _what(node_id: str, node: Node) -> str:
    return f"voicemail {node_id!r}" if isinstance(node, VoicemailNode) else f"line {node_id!r}"


# ---------------------------------------------------- the product graph search

_Consent = Literal["none", "granted", "granted_before_notice", "refused"]


@dataclass(frozen=True, slots=True)
class _State:
    """A node and everything the engine remembers that the rules depend on."""

    node: str
    recording_notice: bool = False
    ai_notice: bool = False
    consent: _Consent = "none"
    default: bool = False  # the last branch since the last explicit choice was a default one


def _step(state: _State, node: Node, edge: _Edge) -> _State:
    """The state after leaving ``node`` by ``edge``.

    A message's notices count once its prompt has played to its end, that is
    when the call leaves it. A consent choice counts as informed only if the
    recording notice was heard before it.
    """
    recording, ai = state.recording_notice, state.ai_notice
    if isinstance(node, MessageNode):
        recording = recording or "recording" in node.notice
        ai = ai or "ai" in node.notice
    consent = state.consent
    if edge.consent == "granted":
        consent = "granted" if state.recording_notice else "granted_before_notice"
    elif edge.consent == "refused":
        consent = "refused"
    default = state.default
    if edge.kind == "option":
        default = False
    elif edge.default:
        default = True
    return _State(edge.target, recording, ai, consent, default)


_Parents = dict[_State, tuple[_State, _Edge] | None]


def _search(flow: Flow) -> _Parents:
    """Every reachable state, in breadth-first order, with the edge that first reached it."""
    first = _State(flow.start)
    parents: _Parents = {first: None}
    queue = deque([first])
    while queue:
        state = queue.popleft()
        node = flow.nodes[state.node]
        for edge in _edges(state.node, node):
            after = _step(state, node, edge)
            if after not in parents:
                parents[after] = (state, edge)
                queue.append(after)
    return parents


def _trace(parents: _Parents, state: _State) -> tuple[tuple[str, ...], list[_Edge]]:
    """The node ids from the start to ``state``, and the edges taken in order."""
    nodes = [state.node]
    edges: list[_Edge] = []
    link = parents[state]
    while link is not None:
        state, edge = link
        nodes.append(state.node)
        edges.append(edge)
        link = parents[state]
    return tuple(reversed(nodes)), list(reversed(edges))


def _consent_reason(state: _State, edges: list[_Edge]) -> str:
    last = next((e for e in reversed(edges) if e.consent is not None), None)
    if last is None:
        return "the caller never chose an option that grants consent"
    choice = f"key {last.digit} at menu {last.source!r}"
    if state.consent == "refused":
        return f"the caller's last choice ({choice}) refused consent"
    return f"consent was granted ({choice}) before the recording notice was played"


def _broken_rules(number: NumberSettings, state: _State) -> list[str]:
    """The recording rules broken by entering a recording node in this state."""
    rules = []
    if not state.recording_notice:
        rules.append("recording_notice")
    # opt_in needs an informed grant; notice mode does not ask, but must not ignore a refusal.
    if state.consent == "refused" or (
        number.consent_mode == "opt_in" and state.consent != "granted"
    ):
        rules.append("consent")
    if number.transcription and not state.ai_notice:
        rules.append("ai_notice")
    if state.default:
        rules.append("default_branch")
    return rules


def _message(
    rule: str, what: str, number: NumberSettings, state: _State, edges: list[_Edge]
) -> str:
    """What is missing, in plain words, for a recording rule broken at the end of ``edges``."""
    if rule == "recording_notice":
        return f"{what} records without a recording notice before it"
    if rule == "ai_notice":
        return (
            f"{what} records and the number has transcription on, "
            "but no AI notice (notice: ai) is played before it"
        )
    if rule == "consent":
        message = f"{what} records in {number.consent_mode} mode, but "
        message += _consent_reason(state, edges)
        if number.consent_mode == "notice":
            message += " (notice mode records whatever the caller chose)"
        return message
    last = next(e for e in reversed(edges) if e.default)
    return (
        f"{what} records and is reached by default: {last.describe()}, "
        "with no explicit choice since"
    )


def _recording_violations(number_id: str, number: NumberSettings, flow: Flow) -> list[Violation]:
    found: dict[tuple[str, str], Violation] = {}
    parents = _search(flow)
    for state in parents:  # breadth-first: the first hit per (rule, node) is a shortest path
        node = flow.nodes[state.node]
        if not _records(node):
            continue
        for rule in _broken_rules(number, state):
            if (rule, state.node) in found:
                continue
            path, edges = _trace(parents, state)
            message = _message(rule, _what(state.node, node), number, state, edges)
            found[rule, state.node] = Violation(number_id, flow.id, rule, path, message)
    return list(found.values())


# ------------------------------------------------------ the flow's structure


def _reachable(flow: Flow) -> dict[str, str | None]:
    """Every node reachable from the start, breadth-first, each with the node it came from."""
    parents: dict[str, str | None] = {flow.start: None}
    queue = deque([flow.start])
    while queue:
        node_id = queue.popleft()
        for edge in _edges(node_id, flow.nodes[node_id]):
            if edge.target not in parents:
                parents[edge.target] = node_id
                queue.append(edge.target)
    return parents


def _plain_path(parents: Mapping[str, str | None], node_id: str) -> list[str]:
    path = [node_id]
    parent = parents[node_id]
    while parent is not None:
        path.append(parent)
        parent = parents[parent]
    return list(reversed(path))


def _silent_cycle(flow: Flow, entry: str) -> list[str] | None:
    """The shortest loop from ``entry`` back to itself through silent nodes only."""
    back: dict[str, str] = {}
    queue = deque([entry])
    while queue:
        node_id = queue.popleft()
        for edge in _edges(node_id, flow.nodes[node_id]):
            target = edge.target
            if not _plays_or_waits(flow.nodes[target]):
                if target == entry:
                    cycle = [entry]
                    while node_id != entry:
                        cycle.append(node_id)
                        node_id = back[node_id]
                    cycle.append(entry)
                    return list(reversed(cycle))
                if target not in back:
                    back[target] = node_id
                    queue.append(target)
    return None


def _dead_edge_hint(flow: Flow, node_id: str) -> str:
    for menu_id, menu in flow.nodes.items():
        if isinstance(menu, MenuNode) and menu.on_invalid == node_id and menu.retries == 0:
            return (
                f" (menu {menu_id!r} names it as on_invalid, but with retries: 0 "
                "an invalid key goes straight to on_timeout)"
            )
    return ""


def check_flow(flow: Flow, number_id: str = "") -> list[Violation]:
    """Rule 4 alone, which needs no number: unreachable nodes and silent loops.

    Useful for a flow that no number uses yet; :func:`check_number` includes it.
    """
    out: list[Violation] = []
    parents = _reachable(flow)
    for node_id in flow.nodes:
        if node_id not in parents:
            out.append(
                Violation(
                    number_id,
                    flow.id,
                    "unreachable",
                    (node_id,),
                    f"node {node_id!r} is never reached from the start node {flow.start!r}"
                    + _dead_edge_hint(flow, node_id),
                )
            )
    looped: set[str] = set()
    for node_id in parents:  # breadth-first: a loop is reported from its nearest node
        if node_id in looped or _plays_or_waits(flow.nodes[node_id]):
            continue
        cycle = _silent_cycle(flow, node_id)
        if cycle is None:
            continue
        looped.update(cycle)
        path = (*_plain_path(parents, node_id), *cycle[1:])
        out.append(
            Violation(
                number_id,
                flow.id,
                "silent_loop",
                path,
                f"the path loops through {' -> '.join(cycle)} without playing a prompt "
                "or waiting for the caller",
            )
        )
    return out


# -------------------------------------------------------------- the public API


def _order(v: Violation) -> tuple[str, str, int, int, tuple[str, ...]]:
    return (v.number, v.flow, RULES.index(v.rule), len(v.path), v.path)


def check_number(number_id: str, number: NumberSettings, flow: Flow) -> list[Violation]:
    """Every violation of the rules by one number with its flow; empty when compliant.

    With the number's ``recording`` switch off nothing is ever recorded, so
    only the structural rules (unreachable nodes, silent loops) apply.
    """
    out = check_flow(flow, number_id)
    if number.recording:
        out.extend(_recording_violations(number_id, number, flow))
    return sorted(out, key=_order)


def check_all(numbers: Mapping[str, NumberSettings], flows: Mapping[str, Flow]) -> list[Violation]:
    """Every violation of every number with the flow it uses; empty when all are compliant."""
    out: list[Violation] = []
    for number_id, number in numbers.items():
        flow = flows.get(number.flow)
        if flow is None:
            out.append(
                Violation(
                    number_id,
                    number.flow,
                    "unknown_flow",
                    (),
                    f"the number uses flow {number.flow!r}, which does not exist",
                )
            )
        else:
            out.extend(check_number(number_id, number, flow))
    return sorted(out, key=_order)


def format_violations(violations: Iterable[Violation]) -> str:
    """Violations as text for a terminal, one block per violation with its path."""
    vs = list(violations)
    if not vs:
        return "no compliance violations: every flow checked is compliant"
    lines = [f"{len(vs)} compliance violation(s):"]
    for v in vs:
        where = f"number {v.number}, flow {v.flow}" if v.number else f"flow {v.flow}"
        lines.append(f"  {where}: [{v.rule}] {v.message}")
        if v.path:
            lines.append(f"    path: {' -> '.join(v.path)}")
    return "\n".join(lines)
