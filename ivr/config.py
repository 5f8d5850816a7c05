"""Config: numbers, teams, bots and flows, loaded from one YAML file.

The file is validated in two passes. pydantic checks each part's shape (types,
ranges, unknown keys); then the cross references are checked (a ``next`` that
names no node, a number whose flow does not exist, a prompt with no file, a
team that does not exist). Every problem is reported at once, each with the
dotted path inside the file, e.g. ``flows.consent_en.nodes.consent.options.1.next``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
)
from yarl import URL

from ivr.e164 import DTMF_DIGITS, is_e164
from ivr.errors import InvalidConfig, Problem

SHIPPED_CONFIG = Path(__file__).with_name("demo.yaml")
SHIPPED_PROMPTS = Path(__file__).resolve().parent.parent / "prompts"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class TtsPrompt(_Strict):
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


class MessageNode(_Strict):
    """Play a prompt, then go on. May carry notices (recording, ai)."""

    type: Literal["message"]
    prompt: PromptSpec
    next: str
    notice: list[Literal["recording", "ai"]] = []


class MenuOption(_Strict):
    next: str
    consent: Literal["granted", "refused"] | None = None


class MenuNode(_Strict):
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


class RingNode(_Strict):
    """Offer the call to a team's agents; hold audio while waiting."""

    type: Literal["ring"]
    team: str
    record: bool
    timeout_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    on_no_answer: str
    strategy: Literal["longest_idle"] = "longest_idle"
    hold: PromptSpec = "hold"


class HangupNode(_Strict):
    """End the call, after an optional goodbye prompt."""

    type: Literal["hangup"]
    prompt: PromptSpec | None = None


class GatherNode(_Strict):
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


class PauseRecordingNode(_Strict):
    """Pause the recording (silence is written) until a resume_recording node."""

    type: Literal["pause_recording"]
    next: str
    reason: Annotated[str, Field(min_length=1, max_length=200)] = "flow"


class ResumeRecordingNode(_Strict):
    type: Literal["resume_recording"]
    next: str


class VoicemailNode(_Strict):
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


class _RawFlow(_Strict):
    start: str
    nodes: Annotated[dict[str, dict[str, Any]], Field(min_length=1)]


class NumberConfig(_Strict):
    """Per-number settings (DESIGN.md part 1)."""

    name: str
    flow: str
    recording: bool = True
    transcription: bool = False
    record_percent: Annotated[int, Field(ge=0, le=100)] = 100
    retention_days: Annotated[int, Field(ge=1, le=36500)] = 90
    consent_mode: Literal["opt_in", "notice"] = "opt_in"
    language: str = "en"  # a short BCP 47 tag: what callers speak, for transcription


class TeamConfig(_Strict):
    bots: Annotated[int, Field(ge=0, le=10000)] = 0
    bot_greeting: str | None = None


class BotConfig(_Strict):
    """How simulated agents behave."""

    answer_delay_s: Annotated[float, Field(ge=0, le=60)] = 1.0
    greeting: str = "bot_greeting_en"
    max_call_s: Annotated[float, Field(gt=0, le=86400)] = 600.0


class LimitsConfig(_Strict):
    max_calls: Annotated[int, Field(ge=1, le=100000)] = 2000
    agent_offer_timeout_s: Annotated[float, Field(gt=0, le=600)] = 15.0
    retention_sweep_s: Annotated[float, Field(ge=1, le=86400)] = 3600.0


class HttpConfig(_Strict):
    """What the HTTP side accepts beyond its defaults.

    ``allowed_origins``: web origins (``scheme://host[:port]``) whose pages
    may open the call and agent WebSockets, besides the server's own origin
    (docs/protocol.md, RFC 6455 section 10.2). Each is checked and kept in
    canonical form (:func:`canonical_origin`).
    """

    allowed_origins: Annotated[list[str], Field(max_length=100)] = []


def canonical_origin(text: str) -> str | None:
    """An origin in the form browsers send it (RFC 6454 section 6.2), or None if not one.

    Lower-case scheme and host, the port only when it is not the scheme's
    default: ``HTTPS://App.Example.com:443`` gives ``https://app.example.com``.
    Only ``http`` and ``https`` origins, with a host and nothing after it
    (no user, path, query or fragment).
    """
    try:
        url = URL(text)
    except (ValueError, TypeError):
        return None
    if (
        url.scheme not in ("http", "https")
        or not url.raw_host
        or url.user is not None
        or url.password is not None
        or url.raw_path not in ("", "/")
        or text.rstrip().endswith("/")
        or url.query_string
        or url.fragment
        or "#" in text
        or "?" in text
    ):
        return None
    host = url.raw_host  # IDNA-encoded, as browsers send it
    host = f"[{host}]" if ":" in host else host
    default = 443 if url.scheme == "https" else 80
    port = "" if url.port in (None, default) else f":{url.port}"
    return f"{url.scheme}://{host}{port}"


class _RawConfig(_Strict):
    prompts_dir: str | None = None
    bots: BotConfig = BotConfig()
    limits: LimitsConfig = LimitsConfig()
    http: HttpConfig = HttpConfig()
    numbers: dict[str, NumberConfig]
    teams: dict[str, TeamConfig] = {}
    flows: dict[str, _RawFlow]


@dataclass(frozen=True, slots=True)
class PromptSource:
    """Where a prompt's audio comes from: a WAV file, or text to render."""

    id: str
    path: Path | None = None
    tts: TtsPrompt | None = None


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


@dataclass(frozen=True, slots=True)
class Config:
    """A whole validated config."""

    source: str
    numbers: Mapping[str, NumberConfig]
    teams: Mapping[str, TeamConfig]
    flows: Mapping[str, Flow]
    bots: BotConfig
    limits: LimitsConfig
    prompts: Mapping[str, PromptSource] = field(default_factory=dict)
    prompts_dir: Path = SHIPPED_PROMPTS
    http: HttpConfig = field(default_factory=HttpConfig)


def prompt_id(spec: str | TtsPrompt) -> str:
    """The id a prompt is known by: its file stem, or ``tts-`` and a content hash."""
    if isinstance(spec, str):
        return spec
    key = json.dumps([spec.tts, spec.voice, spec.speed_wpm], ensure_ascii=False)
    return "tts-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _loc(loc: tuple[int | str, ...]) -> str:
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


def _problems(prefix: tuple[str, ...], exc: ValidationError, data: Any) -> list[Problem]:
    seen: dict[str, Problem] = {}
    for err in exc.errors(include_url=False):
        loc = _data_loc(data, tuple(err["loc"]))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        path = _loc(prefix + loc)
        seen.setdefault(path, Problem(path, msg))  # the first message per path
    return list(seen.values())


def _flow_refs(node: Node) -> list[tuple[str, str]]:
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


def _node_prompts(node: Node) -> list[tuple[str, str | TtsPrompt]]:
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
        raw = _RawFlow.model_validate(data)
    except ValidationError as exc:
        return None, _problems(base, exc, data)
    problems: list[Problem] = []
    nodes: dict[str, Node] = {}
    for node_id, node_data in raw.nodes.items():
        npath = (*base, "nodes", node_id)
        kind = node_data.get("type") if isinstance(node_data, dict) else None
        model = NODE_TYPES.get(kind) if isinstance(kind, str) else None
        if model is None:
            problems.append(
                Problem(
                    _loc((*npath, "type")),
                    f"unknown node type {kind!r}; use one of {', '.join(NODE_TYPES)}",
                )
            )
            continue
        try:
            node = TypeAdapter(model).validate_python(node_data)
        except ValidationError as exc:
            problems.extend(_problems(npath, exc, node_data))
            continue
        assert isinstance(node, BaseModel)
        node = cast(Node, node)
        nodes[node_id] = node
        if isinstance(node, MenuNode):
            for digit in node.options:
                if len(digit) != 1 or digit not in DTMF_DIGITS:
                    problems.append(
                        Problem(
                            _loc((*npath, "options", digit)),
                            f"option key must be one DTMF digit of {DTMF_DIGITS}",
                        )
                    )
    if raw.start not in raw.nodes:
        problems.append(Problem(_loc((*base, "start")), f"no node named {raw.start!r}"))
    for node_id, node in nodes.items():
        for sub, target in _flow_refs(node):
            if target not in raw.nodes:
                problems.append(
                    Problem(
                        _loc((*base, "nodes", node_id, *sub.split("."))),
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


def prompt_source(spec: str | TtsPrompt, prompts_dir: Path) -> PromptSource | None:
    """Where a prompt's audio comes from; None for a file that does not exist."""
    pid = prompt_id(spec)
    if isinstance(spec, TtsPrompt):
        return PromptSource(pid, tts=spec)
    file = prompts_dir / f"{spec}.wav"
    return PromptSource(pid, path=file) if file.is_file() else None


def flow_dependencies(
    flow: Flow, prompts_dir: Path, teams: Iterable[str], where: str = "flows"
) -> tuple[dict[str, PromptSource], list[Problem]]:
    """The prompts a valid flow plays, and any prompt or team it names that does not exist."""
    team_ids = set(teams)
    prompts: dict[str, PromptSource] = {}
    problems: list[Problem] = []
    for node_id, node in flow.nodes.items():
        npath = f"{where}.{flow.id}.nodes.{node_id}" if where else f"nodes.{node_id}"
        for sub, spec in _node_prompts(node):
            src = prompt_source(spec, prompts_dir)
            if src is None:
                problems.append(
                    Problem(f"{npath}.{sub}", f"no prompt file {spec}.wav in the prompts folder")
                )
            else:
                prompts.setdefault(src.id, src)
        if isinstance(node, RingNode) and node.team not in team_ids:
            problems.append(Problem(f"{npath}.team", f"no team named {node.team!r}"))
    return prompts, problems


def parse_config(data: Any, source: str, base_dir: Path) -> Config:
    """Validate config data already read from YAML; :class:`InvalidConfig` lists all problems."""
    if not isinstance(data, dict):
        raise InvalidConfig(source, [Problem("", "the config must be a mapping at the top level")])
    numbers = data.get("numbers")
    if isinstance(numbers, dict):
        bad = [k for k in numbers if not isinstance(k, str)]
        if bad:
            raise InvalidConfig(
                source,
                [
                    Problem(
                        f"numbers.{k}",
                        f'write the number in quotes, e.g. "+{k}": YAML reads '
                        "an unquoted +number as an integer",
                    )
                    for k in bad
                ],
            )
    try:
        raw = _RawConfig.model_validate(data)
    except ValidationError as exc:
        raise InvalidConfig(source, _problems((), exc, data)) from None
    problems: list[Problem] = []
    prompts_dir = (base_dir / raw.prompts_dir) if raw.prompts_dir else SHIPPED_PROMPTS
    if raw.prompts_dir and not prompts_dir.is_dir():
        problems.append(Problem("prompts_dir", f"no such folder: {raw.prompts_dir}"))
    prompts: dict[str, PromptSource] = {}

    def need_prompt(path: str, spec: str | TtsPrompt) -> None:
        src = prompt_source(spec, prompts_dir)
        if src is None:
            problems.append(Problem(path, f"no prompt file {spec}.wav in the prompts folder"))
        else:
            prompts.setdefault(src.id, src)

    for e164, number in raw.numbers.items():
        if not is_e164(e164):
            problems.append(
                Problem(
                    f"numbers.{e164}", "not an E.164 number (a + then 2 to 15 digits, no spaces)"
                )
            )
        if number.flow not in raw.flows:
            problems.append(Problem(f"numbers.{e164}.flow", f"no flow named {number.flow!r}"))
    origins = []
    for i, origin in enumerate(raw.http.allowed_origins):
        canonical = canonical_origin(origin)
        if canonical is None:
            problems.append(
                Problem(
                    f"http.allowed_origins.{i}",
                    f"not an origin: {origin[:100]!r}; write scheme://host[:port], "
                    "such as https://app.example.com (http or https, no path)",
                )
            )
        else:
            origins.append(canonical)
    for team_id, team in raw.teams.items():
        if team.bot_greeting is not None:
            need_prompt(f"teams.{team_id}.bot_greeting", team.bot_greeting)
    if any(t.bots for t in raw.teams.values()):
        need_prompt("bots.greeting", raw.bots.greeting)
    flows: dict[str, Flow] = {}
    for flow_id, raw_flow in raw.flows.items():
        flow, flow_problems = validate_flow(flow_id, raw_flow.model_dump(), ("flows",))
        problems.extend(flow_problems)
        if flow is None:
            continue
        flows[flow_id] = flow
        flow_prompts, dep_problems = flow_dependencies(flow, prompts_dir, raw.teams)
        problems.extend(dep_problems)
        for pid, src in flow_prompts.items():
            prompts.setdefault(pid, src)
    if problems:
        raise InvalidConfig(source, problems)
    return Config(
        source=source,
        numbers=raw.numbers,
        teams=raw.teams,
        flows=flows,
        bots=raw.bots,
        limits=raw.limits,
        prompts=prompts,
        prompts_dir=prompts_dir,
        http=HttpConfig(allowed_origins=list(dict.fromkeys(origins))),
    )


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key repeated in one mapping (YAML would keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_config(path: Path | None = None) -> Config:
    """Read and validate a YAML config file (the shipped demo config by default)."""
    path = path or SHIPPED_CONFIG
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidConfig(source, [Problem("", f"cannot read the file: {exc.strerror}")]) from exc
    except UnicodeDecodeError as exc:
        raise InvalidConfig(
            source, [Problem("", f"the file is not UTF-8 (byte {exc.start})")]
        ) from exc
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InvalidConfig(source, [Problem(where, f"not valid YAML: {exc}")]) from exc
    return parse_config(data, source, path.parent)
