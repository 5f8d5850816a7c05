"""Config: numbers, teams, bots and flows, loaded from one YAML file.

The only place that reads the file. It is validated in two passes. pydantic
checks each part's shape (types, ranges, unknown keys); then the cross
references are checked (a ``next`` that names no node, a number whose flow
does not exist, a prompt with no file, a team that does not exist). Every
problem is reported at once, each with the dotted path inside the file, e.g.
``flows.consent_en.nodes.consent.options.1.next``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ivr.config.model import (
    SHIPPED_CONFIG,
    SHIPPED_PROMPTS,
    Config,
    HttpConfig,
    PromptSource,
    RawConfig,
    canonical_origin,
    parse_port_range,
)
from ivr.e164 import is_e164
from ivr.errors import InvalidConfig, Problem
from ivr.flows.nodes import (
    Flow,
    RingNode,
    TtsPrompt,
    node_prompts,
    prompt_id,
    pydantic_problems,
    validate_flow,
)


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
        for sub, spec in node_prompts(node):
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
        raw = RawConfig.model_validate(data)
    except ValidationError as exc:
        raise InvalidConfig(source, pydantic_problems((), exc, data)) from None
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
    try:
        parse_port_range(raw.sip.rtp_ports)
    except ValueError as exc:
        problems.append(Problem("sip.rtp_ports", str(exc)))
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
        sip=raw.sip,
        audit=raw.audit.model_copy(
            update={
                k: str(base_dir / v)
                for k in ("checkpoint_file", "signing_key")
                if (v := getattr(raw.audit, k)) is not None
            }
        ),
        encryption=raw.encryption.model_copy(
            update={}
            if raw.encryption.key_folder is None
            else {"key_folder": str(base_dir / raw.encryption.key_folder)}
        ),
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
