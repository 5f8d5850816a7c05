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
    """What calls use after start-up: the store's numbers, flows and teams, and the prompts."""

    numbers: dict[str, NumberConfig]
    flows: dict[str, Flow]
    teams: dict[str, TeamConfig]
    prompts: dict[str, PromptSource]


async def seed_and_load(config: Config, store: Store) -> LiveState:
    """Write the config's parts into the store where it owns them; return the live state."""
    catalog = store.catalog
    for team_id, team in config.teams.items():
        if await catalog.source_of("teams", team_id) != "api":
            await catalog.save_team(team_id, team.bots, team.bot_greeting)
        else:
            log.info("team %s: keeping the settings changed through the API", team_id)
    for flow in config.flows.values():
        await catalog.save_flow(flow.id, flow.version, flow.definition())
        if await catalog.source_of("flow_heads", flow.id) != "api":
            await catalog.set_flow_head(flow.id, flow.version)
        else:
            log.info("flow %s: keeping the version set through the API", flow.id)
    for number_id, number in config.numbers.items():
        if await catalog.source_of("numbers", number_id) != "api":
            await catalog.save_number(number_id, number)
        else:
            log.info("number %s: keeping the settings changed through the API", number_id)

    problems: list[Problem] = []
    teams = {
        t.id: TeamConfig(bots=t.bots, bot_greeting=t.bot_greeting) for t in await catalog.teams()
    }
    flows: dict[str, Flow] = {}
    prompts: dict[str, PromptSource] = dict(config.prompts)
    for row in await catalog.current_flows():
        flow_id = row.id
        stored, flow_problems = validate_flow(flow_id, row.definition, ("store flow",))
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
    for number_row in await catalog.numbers():
        numbers[number_row.id] = NumberConfig.model_validate(number_row.settings())
        if number_row.flow not in flows:
            problems.append(
                Problem(f"store number {number_row.id}.flow", f"no flow named {number_row.flow!r}")
            )
    if problems:
        raise InvalidConfig(str(store.db_path.name), problems)
    return LiveState(numbers, flows, teams, prompts)
