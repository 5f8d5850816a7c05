"""Users, teams, numbers and flows: the parts Admins (and for users, Owners) manage.

Each change is one use case of :mod:`ivr.services` (validated, proved
compliant, kept in the store with source ``api`` so a restart keeps it over
the config file, applied to the next call, audited); a handler here parses
the request, calls it, and turns the result or the refusal into HTTP.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ivr.api.base import (
    ApiError,
    Route,
    audit_of,
    read_json,
    read_model,
    require,
    services_of,
    store_of,
)
from ivr.config import NumberConfig
from ivr.e164 import is_e164
from ivr.server.keys import switchboard_key
from ivr.services import flows, numbers, teams, users

# -- users -----------------------------------------------------------------------


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    name: str = Field(min_length=1, max_length=200)
    role: Literal["agent", "supervisor", "admin", "owner"]
    teams: list[str] = Field(default=[], max_length=50)
    password: str = Field(min_length=8, max_length=1024)


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    role: Literal["agent", "supervisor", "admin", "owner"] | None = None
    teams: list[str] | None = Field(default=None, max_length=50)
    password: str | None = Field(default=None, min_length=8, max_length=1024)


async def list_users(request: web.Request) -> web.Response:
    user = await require(request, "users.read")
    found = await store_of(request).users.all()
    await audit_of(request).record(user, "users.list", "ok", object_type="user")
    return web.json_response({"items": [u.public() for u in found]})


async def create_user(request: web.Request) -> web.Response:
    actor = await require(request, "users.write")
    body = await read_model(request, UserCreate)
    user = await users.add_user(
        services_of(request),
        actor,
        email=body.email,
        name=body.name,
        role=body.role,
        password=body.password,
        teams=body.teams,
    )
    return web.json_response(user.public(), status=201)


async def patch_user(request: web.Request) -> web.Response:
    actor = await require(request, "users.write")
    body = await read_model(request, UserPatch)
    user = await users.change_user(
        services_of(request),
        actor,
        request.match_info["user_id"],
        name=body.name,
        role=body.role,
        teams=body.teams,
        password=body.password,
        fields=body.model_fields_set,
    )
    return web.json_response(user.public())


async def delete_user(request: web.Request) -> web.Response:
    actor = await require(request, "users.write")
    await users.delete_user(services_of(request), actor, request.match_info["user_id"])
    return web.Response(status=204)


# -- teams -----------------------------------------------------------------------


class TeamBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    bots: int = Field(default=0, ge=0, le=10000)
    bot_greeting: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$")


class TeamPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    bots: int | None = Field(default=None, ge=0, le=10000)
    bot_greeting: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$")


class TeamCreate(TeamBody):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")


async def list_teams(request: web.Request) -> web.Response:

    user = await require(request, "teams.read")
    sb = request.app[switchboard_key]
    items = []
    for team_id, team in sorted(sb.teams.items()):
        seats = [s for s in sb.seats.values() if team_id in s.teams]
        items.append(
            {
                "id": team_id,
                "bots": team.bots,
                "bot_greeting": team.bot_greeting,
                "people_signed_in": sum(not s.is_bot for s in seats),
                "available": sum(s.state == "ready" for s in seats),
                "waiting_calls": sb.waiting(team_id),
            }
        )
    await audit_of(request).record(user, "teams.list", "ok", object_type="team")
    return web.json_response({"items": items})


def _team_out(team_id: str, bots: int, bot_greeting: str | None) -> dict[str, Any]:
    return {"id": team_id, "bots": bots, "bot_greeting": bot_greeting}


async def create_team(request: web.Request) -> web.Response:
    actor = await require(request, "teams.write")
    body = await read_model(request, TeamCreate)
    team = await teams.create_team(
        services_of(request), actor, body.id, bots=body.bots, bot_greeting=body.bot_greeting
    )
    return web.json_response(_team_out(body.id, team.bots, team.bot_greeting), status=201)


async def patch_team(request: web.Request) -> web.Response:
    actor = await require(request, "teams.write")
    team_id = request.match_info["team_id"]
    patch = await read_model(request, TeamPatch)
    team = await teams.change_team(
        services_of(request),
        actor,
        team_id,
        bots=patch.bots,
        bot_greeting=patch.bot_greeting if "bot_greeting" in patch.model_fields_set else teams.KEEP,
    )
    return web.json_response(_team_out(team_id, team.bots, team.bot_greeting))


async def delete_team(request: web.Request) -> web.Response:
    actor = await require(request, "teams.write")
    await teams.delete_team(services_of(request), actor, request.match_info["team_id"])
    return web.Response(status=204)


# -- numbers -----------------------------------------------------------------------


class NumberPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    flow: str | None = None
    recording: bool | None = None
    transcription: bool | None = None
    record_percent: int | None = Field(default=None, ge=0, le=100)
    retention_days: int | None = Field(default=None, ge=1, le=36500)
    consent_mode: Literal["opt_in", "notice"] | None = None


def _number_out(number_id: str, n: NumberConfig) -> dict[str, Any]:
    return {"id": number_id, **n.model_dump()}


async def list_numbers(request: web.Request) -> web.Response:

    user = await require(request, "numbers.read")
    numbers = request.app[switchboard_key].numbers
    await audit_of(request).record(user, "numbers.list", "ok", object_type="number")
    return web.json_response({"items": [_number_out(k, v) for k, v in sorted(numbers.items())]})


def _number_id(request: web.Request) -> str:
    number_id = request.match_info["number_id"]
    if not is_e164(number_id):
        raise ApiError(404, "not_found", "not an E.164 number of this server")
    return number_id


async def get_number(request: web.Request) -> web.Response:

    user = await require(request, "numbers.read")
    number_id = _number_id(request)
    number = request.app[switchboard_key].numbers.get(number_id)
    if number is None:
        raise ApiError(404, "not_found", "no such number on this server")
    await audit_of(request).record(
        user, "numbers.read", "ok", object_type="number", object_id=number_id
    )
    return web.json_response(_number_out(number_id, number))


async def patch_number(request: web.Request) -> web.Response:
    actor = await require(request, "numbers.write")
    number_id = _number_id(request)
    body = await read_model(request, NumberPatch)
    change = await numbers.change_number(
        services_of(request),
        actor,
        number_id,
        body.model_dump(exclude_unset=True),
        dry_run=request.query.get("dry_run") in ("1", "true"),
    )
    out = _number_out(number_id, change.settings)
    # A dry run answers the verdict before saving: accepted, and nothing changed.
    return web.json_response(out if change.saved else {**out, "saved": False})


# -- flows -------------------------------------------------------------------------


async def list_flows(request: web.Request) -> web.Response:

    user = await require(request, "flows.read")
    flows = request.app[switchboard_key].flows
    await audit_of(request).record(user, "flows.list", "ok", object_type="flow")
    return web.json_response(
        {
            "items": [
                {"id": f.id, "version": f.version, "start": f.start, "nodes": len(f.nodes)}
                for f in sorted(flows.values(), key=lambda f: f.id)
            ]
        }
    )


async def get_flow(request: web.Request) -> web.Response:

    user = await require(request, "flows.read")
    flow_id = request.match_info["flow_id"]
    flow = request.app[switchboard_key].flows.get(flow_id)
    if flow is None:
        raise ApiError(404, "not_found", f"no flow {flow_id[:64]}")
    await audit_of(request).record(user, "flows.read", "ok", object_type="flow", object_id=flow_id)
    return web.json_response(
        {
            "id": flow.id,
            "version": flow.version,
            **flow.definition(),
            "versions": [asdict(v) for v in await store_of(request).catalog.flow_versions(flow_id)],
        }
    )


async def put_flow(request: web.Request) -> web.Response:
    actor = await require(request, "flows.write")
    body = await read_json(request)
    flow = await flows.put_flow(services_of(request), actor, request.match_info["flow_id"], body)
    return web.json_response({"id": flow.id, "version": flow.version, **flow.definition()})


async def check_flow(request: web.Request) -> web.Response:
    actor = await require(request, "flows.write")
    body = await read_json(request)
    verdict = await flows.check_flow(services_of(request), actor, body)
    if not verdict.valid:
        return web.json_response({"valid": False, "problems": verdict.problems})
    return web.json_response({"valid": True, "problems": [], "version": verdict.version})


ROUTES: list[Route] = [
    ("GET", "/v1/users", list_users),
    ("POST", "/v1/users", create_user),
    ("PATCH", "/v1/users/{user_id}", patch_user),
    ("DELETE", "/v1/users/{user_id}", delete_user),
    ("GET", "/v1/teams", list_teams),
    ("POST", "/v1/teams", create_team),
    ("PATCH", "/v1/teams/{team_id}", patch_team),
    ("DELETE", "/v1/teams/{team_id}", delete_team),
    ("GET", "/v1/numbers", list_numbers),
    ("GET", "/v1/numbers/{number_id}", get_number),
    ("PATCH", "/v1/numbers/{number_id}", patch_number),
    ("GET", "/v1/flows", list_flows),
    ("GET", "/v1/flows/{flow_id}", get_flow),
    ("PUT", "/v1/flows/{flow_id}", put_flow),
    ("POST", "/v1/flows/check", check_flow),
]
