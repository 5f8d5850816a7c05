"""Teams: create, change, delete; kept in the store (source ``api``) and applied live.

A team's bots change at once (the switchboard adds or ends them); a team
that a flow rings cannot be deleted.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

from ivr.config import TeamConfig
from ivr.services.context import Context
from ivr.services.errors import Conflict, Missing
from ivr.services.prompts import ensure_prompts
from ivr.store import User


class _Keep(Enum):
    KEEP = "keep"


KEEP: Final = _Keep.KEEP
"""For :func:`change_team`: leave the field as it is."""


async def _save(ctx: Context, actor: User, team_id: str, team: TeamConfig, what: str) -> TeamConfig:
    sb = ctx.live()
    greeting = team.bot_greeting or (sb.config.bots.greeting if team.bots else None)
    if greeting is not None:
        await ensure_prompts(ctx, {"bot_greeting": greeting})
    await ctx.store.catalog.save_team(team_id, team.bots, team.bot_greeting, source="api")
    sb.set_team(team_id, team)
    await ctx.audited(
        actor,
        f"teams.{what}",
        "ok",
        object_type="team",
        object_id=team_id,
        detail={"bots": team.bots},
    )
    return team


async def create_team(
    ctx: Context, actor: User, team_id: str, *, bots: int = 0, bot_greeting: str | None = None
) -> TeamConfig:
    """A new team; :class:`Conflict` if it exists."""
    if team_id in ctx.live().teams:
        raise Conflict(f"team {team_id} already exists")
    return await _save(
        ctx, actor, team_id, TeamConfig(bots=bots, bot_greeting=bot_greeting), "create"
    )


async def change_team(
    ctx: Context,
    actor: User,
    team_id: str,
    *,
    bots: int | None = None,
    bot_greeting: str | _Keep | None = KEEP,
) -> TeamConfig:
    """Change a team's bots (None: kept) or greeting (:data:`KEEP`: kept)."""
    current = ctx.live().teams.get(team_id)
    if current is None:
        raise Missing(f"no team {team_id[:64]}")
    team = TeamConfig(
        bots=current.bots if bots is None else bots,
        bot_greeting=current.bot_greeting if bot_greeting is KEEP else bot_greeting,
    )
    return await _save(ctx, actor, team_id, team, "update")


async def delete_team(ctx: Context, actor: User, team_id: str) -> None:
    """Delete a team and take it out of every user; :class:`Conflict` while a flow rings it."""
    sb = ctx.live()
    if team_id not in sb.teams:
        raise Missing(f"no team {team_id[:64]}")
    ringing = [
        f.id
        for f in sb.flows.values()
        if any(getattr(n, "team", None) == team_id for n in f.nodes.values())
    ]
    if ringing:
        raise Conflict(f"team {team_id} is rung by flow(s) {', '.join(ringing)}")
    await ctx.store.catalog.delete_team(team_id)
    sb.set_team(team_id, None)
    await ctx.audited(actor, "teams.delete", "ok", object_type="team", object_id=team_id)
