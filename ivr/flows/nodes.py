"""Flow nodes and flows: the shapes a flow is written in, and their checks.

Each node type of docs/config.md is a strict pydantic model (no coercion,
unknown keys refused); :func:`validate_flow` checks one flow's shape and its
internal references (a ``next`` that names no node), and reports every
problem with its dotted path. What a flow needs from outside it (prompt
files, teams) is the config's to check (:mod:`ivr.config`). Pure: no files,
no clock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
)

from ivr.e164 import DTMF_DIGITS
from ivr.errors import Problem


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class TtsPrompt(Strict):
    """A prompt given as text, rendered once with espeak-ng and cached."""

    tts: Annotated[str, Field(min_length=1, max_length=2000)]
    voice: str = "en-us"
    speed_wpm: Annotated[int, Field(ge=80, le=400)] = 160


def _prompt_kind(value: Any) -> str:
    return "prompt-tts" if isinstance(value, dict | TtsPrompt) else "prompt-file"


PromptSpec = Annotated[
    Annotated[Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")], Tag("prompt-file")]
    | Annotated[TtsPrompt, Tag("prompt-tts")],
    Discriminator(_prompt_kind),
]


class MessageNode(Strict):
    """Play a prompt, then go on. May carry notices (recording, ai)."""

    type: Literal["message"]
    prompt: PromptSpec
    next: str
    notice: list[Literal["recording", "ai"]] = []


class MenuOption(Strict):
    next: str
    consent: Literal["granted", "refused"] | None = None


class MenuNode(Strict):
    """Play a prompt and wait for one digit.

    ``retries`` is how many more times the menu is offered after a timeout or an
    invalid key. When they run out the call goes to ``on_timeout``. An invalid
    key while retries remain goes to ``on_invalid`` (default: this menu again).
    """

    type: Literal["menu"]
    prompt: PromptSpec
    options: dict[str, MenuOption]
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 5.0
    retries: Annotated[int, Field(ge=0, le=10)] = 2
    on_timeout: str
    on_invalid: str | None = None


class RingNode(Strict):
    """Offer the call to a team's agents; hold audio while waiting."""

    type: Literal["ring"]
    team: str
    record: bool
    timeout_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    on_no_answer: str
    strategy: Literal["longest_idle"] = "longest_idle"
    hold: PromptSpec = "hold"


class HangupNode(Strict):
    """End the call, after an optional goodbye prompt."""

    type: Literal["hangup"]
    prompt: PromptSpec | None = None


class GatherNode(Strict):
    """Play a prompt and collect several digits.

    Ends at ``max_digits``, at ``finish_key``, or when ``inter_digit_timeout_s``
    passes after a digit; with no digit within ``timeout_s`` it goes to
    ``on_timeout``. ``sensitive: true`` pauses the recording (and so the
    transcription) for the gather's whole span, masks the tones, and keeps the
    digits out of events, logs, the API and exports.
    """

    type: Literal["gather"]
    prompt: PromptSpec
    next: str
    on_timeout: str
    max_digits: Annotated[int, Field(ge=1, le=32)] = 16
    finish_key: Literal["#", "*"] | None = "#"
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 8.0
    inter_digit_timeout_s: Annotated[float, Field(gt=0, le=60)] = 4.0
    sensitive: bool = False


class PauseRecordingNode(Strict):
    """Pause the recording (silence is written) until a resume_recording node."""

    type: Literal["pause_recording"]
    next: str
    reason: Annotated[str, Field(min_length=1, max_length=200)] = "flow"


class ResumeRecordingNode(Strict):
    type: Literal["resume_recording"]
    next: str


class VoicemailNode(Strict):
    """Play a greeting, then record a message under the same rules as a line."""

    type: Literal["voicemail"]
    prompt: PromptSpec
    record: bool
    max_length_s: Annotated[float, Field(gt=0, le=3600)] = 120.0
    finish_key: Literal["#", "*"] | None = "#"
    next: str | None = None


Node = (
    MessageNode
    | MenuNode
    | RingNode
    | HangupNode
    | GatherNode
    | PauseRecordingNode
    | ResumeRecordingNode
    | VoicemailNode
)


NODE_TYPES: dict[str, type[BaseModel]] = {
    "message": MessageNode,
    "menu": MenuNode,
    "ring": RingNode,
    "hangup": HangupNode,
    "gather": GatherNode,
    "pause_recording": PauseRecordingNode,
    "resume_recording": ResumeRecordingNode,
    "voicemail": VoicemailNode,
}


class RawFlow(Strict):
    start: str
    nodes: Annotated[dict[str, dict[str, Any]], Field(min_length=1)]


@dataclass(frozen=True, slots=True)
class Flow:
    """A validated flow: its nodes and a version derived from its content."""

    id: str
    start: str
    nodes: Mapping[str, Node]
    version: str

    def definition(self) -> dict[str, Any]:
        """The flow as plain data, as it would be written in YAML."""
        return {
            "start": self.start,
            "nodes": {k: n.model_dump(exclude_defaults=False) for k, n in self.nodes.items()},
        }


def prompt_id(spec: str | TtsPrompt) -> str:
    """The id a prompt is known by: its file stem, or ``tts-`` and a content hash."""
    if isinstance(spec, str):
        return spec
    key = json.dumps([spec.tts, spec.voice, spec.speed_wpm], ensure_ascii=False)
    return "tts-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def dotted(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc)


_TAGS = ("prompt-file", "prompt-tts")


def _data_loc(data: Any, loc: tuple[int | str, ...]) -> tuple[str, ...]:
    """Keep only the parts of pydantic's location that index into the input.

    pydantic adds the names of union branches and tags to a location; walking
    the data tells them apart from real keys, whatever they are called.
    """
    out: list[str] = []
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, dict) and str(part) in data:
            data = data[str(part)]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        elif part in _TAGS:
            continue  # a union branch's tag, not a place in the file
        elif isinstance(data, dict):
            out.append(str(part))  # a missing key: still where the problem is
            data = None
            continue
        else:
            continue
        out.append(str(part))
    return tuple(out)


def pydantic_problems(prefix: tuple[str, ...], exc: ValidationError, data: Any) -> list[Problem]:
    seen: dict[str, Problem] = {}
    for err in exc.errors(include_url=False):
        loc = _data_loc(data, tuple(err["loc"]))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        path = dotted(prefix + loc)
        seen.setdefault(path, Problem(path, msg))  # the first message per path
    return list(seen.values())


def node_edges(node: Node) -> list[tuple[str, str]]:
    """(path inside the node, target node id) for every edge of a node."""
    if isinstance(node, MessageNode):
        return [("next", node.next)]
    if isinstance(node, MenuNode):
        refs = [(f"options.{d}.next", o.next) for d, o in node.options.items()]
        refs.append(("on_timeout", node.on_timeout))
        if node.on_invalid is not None:
            refs.append(("on_invalid", node.on_invalid))
        return refs
    if isinstance(node, RingNode):
        return [("on_no_answer", node.on_no_answer)]
    if isinstance(node, GatherNode):
        return [("next", node.next), ("on_timeout", node.on_timeout)]
    if isinstance(node, PauseRecordingNode | ResumeRecordingNode):
        return [("next", node.next)]
    if isinstance(node, VoicemailNode):
        return [("next", node.next)] if node.next is not None else []
    return []


def node_prompts(node: Node) -> list[tuple[str, str | TtsPrompt]]:
    if isinstance(node, RingNode):
        return [("hold", node.hold)]
    if isinstance(node, PauseRecordingNode | ResumeRecordingNode):
        return []
    if node.prompt is None:
        return []
    return [("prompt", node.prompt)]


def _stringify_option_keys(data: Any) -> Any:
    """YAML reads ``1:`` as an integer key; a menu option means the digit."""
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), dict):
        return data
    nodes = {}
    for node_id, node in data["nodes"].items():
        if isinstance(node, dict) and isinstance(node.get("options"), dict):
            node = {**node, "options": {str(k): v for k, v in node["options"].items()}}
        nodes[str(node_id)] = node
    return {**data, "nodes": nodes}


def validate_flow(
    flow_id: str, data: Any, where: tuple[str, ...] = ()
) -> tuple[Flow | None, list[Problem]]:
    """Validate one flow's shape and internal references (not prompts or teams)."""
    base = (*where, flow_id) if where else (flow_id,)
    data = _stringify_option_keys(data)
    try:
        raw = RawFlow.model_validate(data)
    except ValidationError as exc:
        return None, pydantic_problems(base, exc, data)
    problems: list[Problem] = []
    nodes: dict[str, Node] = {}
    for node_id, node_data in raw.nodes.items():
        npath = (*base, "nodes", node_id)
        kind = node_data.get("type") if isinstance(node_data, dict) else None
        model = NODE_TYPES.get(kind) if isinstance(kind, str) else None
        if model is None:
            problems.append(
                Problem(
                    dotted((*npath, "type")),
                    f"unknown node type {kind!r}; use one of {', '.join(NODE_TYPES)}",
                )
            )
            continue
        try:
            node = TypeAdapter(model).validate_python(node_data)
        except ValidationError as exc:
            problems.extend(pydantic_problems(npath, exc, node_data))
            continue
        assert isinstance(node, BaseModel)
        node = cast(Node, node)
        nodes[node_id] = node
        if isinstance(node, MenuNode):
            for digit in node.options:
                if len(digit) != 1 or digit not in DTMF_DIGITS:
                    problems.append(
                        Problem(
                            dotted((*npath, "options", digit)),
                            f"option key must be one DTMF digit of {DTMF_DIGITS}",
                        )
                    )
    if raw.start not in raw.nodes:
        problems.append(Problem(dotted((*base, "start")), f"no node named {raw.start!r}"))
    for node_id, node in nodes.items():
        for sub, target in node_edges(node):
            if target not in raw.nodes:
                problems.append(
                    Problem(
                        dotted((*base, "nodes", node_id, *sub.split("."))),
                        f"no node named {target!r} in flow {flow_id!r}",
                    )
                )
    if problems:
        return None, problems
    return Flow(flow_id, raw.start, nodes, flow_version(raw.start, nodes)), []


def flow_version(start: str, nodes: Mapping[str, Node]) -> str:
    """A version that names the flow's content: the same flow, the same version."""
    definition = {"start": start, "nodes": {k: n.model_dump() for k, n in nodes.items()}}
    canonical = json.dumps(definition, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]
