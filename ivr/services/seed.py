"""Start-up: seed the store from the config, then read back what calls will use.

The config seeds numbers, teams and flows. A row the config set before is
updated from the config at each start (the file is its source); a row
changed through the API keeps the API's values (the store is its source),
and a log line says so. Flows keep every version, named by content hash;
``flow_heads`` says which one calls use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ivr.config import (
    Config,
    NumberConfig,
    PromptSource,
    TeamConfig,
    flow_dependencies,
    prompt_source,
)
from ivr.errors import InvalidConfig, Problem
from ivr.flows import Flow, validate_flow
from ivr.store import Store

log = logging.getLogger("ivr.seed")


@dataclass(frozen=True, slots=True)
class LiveState:
    numbers: dict[str, NumberConfig]
    flows: dict[str, Flow]
    teams: dict[str, TeamConfig]
    prompts: dict[str, PromptSource]


async def seed_and_load(config: Config, store: Store) -> LiveState:
    """Write the config's parts into the store where it owns them; return the live state."""
    for team_id, team in config.teams.items():
        if await store.source_of("teams", team_id) != "api":
            await store.save_team(team_id, team.bots, team.bot_greeting)
        else:
            log.info("team %s: keeping the settings changed through the API", team_id)
    for flow in config.flows.values():
        await store.save_flow(flow.id, flow.version, flow.definition())
        if await store.source_of("flow_heads", flow.id) != "api":
            await store.set_flow_head(flow.id, flow.version)
        else:
            log.info("flow %s: keeping the version set through the API", flow.id)
    for number_id, number in config.numbers.items():
        if await store.source_of("numbers", number_id) != "api":
            await store.save_number(number_id, number.model_dump())
        else:
            log.info("number %s: keeping the settings changed through the API", number_id)

    problems: list[Problem] = []
    teams = {
        t["id"]: TeamConfig(bots=t["bots"], bot_greeting=t["bot_greeting"])
        for t in await store.list_teams()
    }
    flows: dict[str, Flow] = {}
    prompts: dict[str, PromptSource] = dict(config.prompts)
    for flow_id, _version, definition in await store.current_flows():
        stored, flow_problems = validate_flow(flow_id, definition, ("store flow",))
        problems.extend(flow_problems)
        if stored is None:
            continue
        flows[flow_id] = stored
        needed, dep_problems = flow_dependencies(
            stored, config.prompts_dir, teams, where="store flow"
        )
        problems.extend(dep_problems)
        prompts.update(needed)
    for team_id, team in teams.items():
        greeting = team.bot_greeting or (config.bots.greeting if team.bots else None)
        if greeting is not None:
            src = prompt_source(greeting, config.prompts_dir)
            if src is None:
                problems.append(
                    Problem(f"store team {team_id}.bot_greeting", f"no prompt file {greeting}.wav")
                )
            else:
                prompts.setdefault(src.id, src)
    numbers: dict[str, NumberConfig] = {}
    for row in await store.list_numbers():
        fields = {k: row[k] for k in NumberConfig.model_fields}
        numbers[row["id"]] = NumberConfig.model_validate(fields)
        if row["flow"] not in flows:
            problems.append(
                Problem(f"store number {row['id']}.flow", f"no flow named {row['flow']!r}")
            )
    if problems:
        raise InvalidConfig(str(store.db_path.name), problems)
    return LiveState(numbers, flows, teams, prompts)
