"""Users, teams, numbers and flows: the parts Admins (and for users, Owners) manage.

Changes persist in the store (source ``api``, so a restart keeps them over
the config file) and take effect for the next call without a restart.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ivr import privacy
from ivr.access.auth import hash_password
from ivr.access.policy import permits
from ivr.api.base import (
    ApiError,
    Route,
    audit_of,
    authenticator_of,
    read_json,
    read_model,
    require,
    store_of,
)
from ivr.call.prompt import PromptLibrary
from ivr.config import NumberConfig, TeamConfig, flow_dependencies, prompt_source
from ivr.e164 import is_e164
from ivr.errors import IvrError, StoreError
from ivr.flows import Flow, compliance, validate_flow
from ivr.server.keys import settings_key, switchboard_key
from ivr.speech import transcribe
from ivr.store import Role, User

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


def _hash_params(request: web.Request) -> Any:

    return request.app[settings_key].hash_params


async def list_users(request: web.Request) -> web.Response:
    user = await require(request, "users.read")
    users = await store_of(request).users.all()
    await audit_of(request).record(user, "users.list", "ok", object_type="user")
    return web.json_response({"items": [u.public() for u in users]})


async def _target(request: web.Request) -> User:
    target = await store_of(request).users.get(request.match_info["user_id"])
    if target is None:
        raise ApiError(404, "not_found", f"no user {request.match_info['user_id'][:64]}")
    return target


async def _check_manage(
    request: web.Request, actor: User, target: User | None, new_role: Role | None, what: str
) -> None:
    obj = {
        "target_id": target.id if target else None,
        "target_role": target.role if target else None,
        "new_role": new_role,
    }
    if not permits(actor, "users.write", obj):
        await audit_of(request).record(
            actor,
            f"users.{what}",
            "refused",
            object_type="user",
            object_id=target.id if target else None,
            detail={"new_role": new_role},
        )
        if target is not None and target.id == actor.id:
            raise ApiError(403, "forbidden", "you cannot change your own role")
        raise ApiError(403, "forbidden", "only an Owner grants, changes or removes the Owner role")


async def create_user(request: web.Request) -> web.Response:
    actor = await require(request, "users.write")
    body = await read_model(request, UserCreate)
    await _check_manage(request, actor, None, body.role, "create")
    hashed = await hash_password(body.password, _hash_params(request))
    try:
        user = await store_of(request).users.add(
            body.email, body.name, body.role, hashed, body.teams
        )
    except StoreError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    await audit_of(request).record(
        actor,
        "users.create",
        "ok",
        object_type="user",
        object_id=user.id,
        detail={"role": user.role},
    )
    return web.json_response(user.public(), status=201)


async def patch_user(request: web.Request) -> web.Response:
    actor = await require(request, "users.write")
    target = await _target(request)
    body = await read_model(request, UserPatch)
    await _check_manage(request, actor, target, body.role, "update")
    hashed = await hash_password(body.password, _hash_params(request)) if body.password else None
    user = await store_of(request).users.update(
        target.id, name=body.name, role=body.role, teams=body.teams, password_hash=hashed
    )
    auth = authenticator_of(request)
    if body.role is not None or body.password is not None:
        # The store deleted every token of the user: their live seats end too.
        auth.sessions_ended(user.id, "the session was revoked: the user's role or password changed")
    elif body.name is not None or body.teams is not None:
        auth.user_changed(user)
    await audit_of(request).record(
        actor,
        "users.update",
        "ok",
        object_type="user",
        object_id=user.id,
        detail={"fields": sorted(body.model_fields_set)},
    )
    return web.json_response(user.public())


async def delete_user(request: web.Request) -> web.Response:
    actor = await require(request, "users.write")
    target = await _target(request)
    await _check_manage(request, actor, target, None, "delete")
    if target.id == actor.id:
        raise ApiError(409, "conflict", "you cannot delete yourself")
    await store_of(request).users.delete(target.id)
    authenticator_of(request).sessions_ended(
        target.id, "the session was ended: the user was deleted"
    )
    await audit_of(request).record(
        actor, "users.delete", "ok", object_type="user", object_id=target.id
    )
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


async def _save_team(
    request: web.Request, team_id: str, body: TeamBody, what: str, actor: User, status: int
) -> web.Response:

    sb = request.app[switchboard_key]
    team = TeamConfig(bots=body.bots, bot_greeting=body.bot_greeting)
    greeting = team.bot_greeting or (sb.config.bots.greeting if team.bots else None)
    if greeting is not None:
        await _ensure_prompts(request, {"bot_greeting": greeting})
    await store_of(request).catalog.save_team(team_id, team.bots, team.bot_greeting, source="api")
    sb.set_team(team_id, team)
    await audit_of(request).record(
        actor,
        f"teams.{what}",
        "ok",
        object_type="team",
        object_id=team_id,
        detail={"bots": team.bots},
    )
    return web.json_response(
        {"id": team_id, "bots": team.bots, "bot_greeting": team.bot_greeting}, status=status
    )


async def create_team(request: web.Request) -> web.Response:

    actor = await require(request, "teams.write")
    body = await read_model(request, TeamCreate)
    if body.id in request.app[switchboard_key].teams:
        raise ApiError(409, "conflict", f"team {body.id} already exists")
    return await _save_team(request, body.id, body, "create", actor, 201)


async def patch_team(request: web.Request) -> web.Response:

    actor = await require(request, "teams.write")
    team_id = request.match_info["team_id"]
    current = request.app[switchboard_key].teams.get(team_id)
    if current is None:
        raise ApiError(404, "not_found", f"no team {team_id[:64]}")
    patch = await read_model(request, TeamPatch)
    body = TeamBody(
        bots=current.bots if patch.bots is None else patch.bots,
        bot_greeting=patch.bot_greeting
        if "bot_greeting" in patch.model_fields_set
        else current.bot_greeting,
    )
    return await _save_team(request, team_id, body, "update", actor, 200)


async def delete_team(request: web.Request) -> web.Response:

    actor = await require(request, "teams.write")
    team_id = request.match_info["team_id"]
    sb = request.app[switchboard_key]
    if team_id not in sb.teams:
        raise ApiError(404, "not_found", f"no team {team_id[:64]}")
    users = [
        f.id
        for f in sb.flows.values()
        if any(getattr(n, "team", None) == team_id for n in f.nodes.values())
    ]
    if users:
        raise ApiError(409, "conflict", f"team {team_id} is rung by flow(s) {', '.join(users)}")
    await store_of(request).catalog.delete_team(team_id)
    sb.set_team(team_id, None)
    await audit_of(request).record(
        actor, "teams.delete", "ok", object_type="team", object_id=team_id
    )
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
    sb = request.app[switchboard_key]
    current = sb.numbers.get(number_id)
    if current is None:
        raise ApiError(404, "not_found", "no such number on this server")
    body = await read_model(request, NumberPatch)
    changes = body.model_dump(exclude_unset=True)
    if any(v is None for v in changes.values()):
        field = next(k for k, v in changes.items() if v is None)
        raise ApiError(422, "invalid", f"{field}: may not be null", field=field)
    if "flow" in changes and changes["flow"] not in sb.flows:
        raise ApiError(422, "invalid", f"flow: no flow named {changes['flow']!r}", field="flow")
    updated = current.model_copy(update=changes)
    if changes.get("transcription") and transcribe.model_for(updated.language) is None:
        await audit_of(request).record(
            actor,
            "numbers.update",
            "failed",
            object_type="number",
            object_id=number_id,
            detail={"why": "no_model", "language": updated.language},
        )
        raise ApiError(
            422,
            "invalid",
            f"transcription: no speech recognition model for the number's language "
            f"{updated.language!r} (models ship for: {', '.join(sorted(transcribe.MODELS))}); "
            "transcription cannot be switched on",
            field="transcription",
        )
    violations = compliance.check_number(number_id, updated, sb.flows[updated.flow])
    if violations:
        await audit_of(request).record(
            actor,
            "numbers.update",
            "failed",
            object_type="number",
            object_id=number_id,
            detail={"why": "non_compliant"},
        )
        raise ApiError(
            422,
            "non_compliant",
            f"with these settings the number breaks {len(violations)} rule(s)",
            problems=[_violation_out(v) for v in violations],
        )
    if request.query.get("dry_run") in ("1", "true"):
        # The verdict before saving: the settings would be accepted; nothing is changed.
        return web.json_response({**_number_out(number_id, updated), "saved": False})
    await store_of(request).catalog.save_number(number_id, updated, source="api")
    if "retention_days" in changes:
        await privacy.apply_retention(store_of(request), number_id, updated.retention_days)
    sb.set_number(number_id, updated)
    await audit_of(request).record(
        actor,
        "numbers.update",
        "ok",
        object_type="number",
        object_id=number_id,
        detail={"changes": changes},
    )
    return web.json_response(_number_out(number_id, updated))


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


async def _check_flow(request: web.Request, flow_id: str, body: dict[str, Any]) -> Any:
    """Validate a flow as the config loader does; 422 with every problem."""

    sb = request.app[switchboard_key]
    flow, problems = validate_flow(flow_id, body, ())
    prompts: dict[str, Any] = {}
    if flow is not None:
        prompts, dep = flow_dependencies(flow, sb.config.prompts_dir, sb.teams, where="")
        problems += dep
    if problems:
        raise ApiError(
            422,
            "invalid_flow",
            f"flow {flow_id[:64]} has {len(problems)} problem(s)",
            problems=[{"path": _strip(p.path, flow_id), "message": p.message} for p in problems],
        )
    assert flow is not None
    violations = _violations(sb.numbers, flow)
    if violations:
        raise ApiError(
            422,
            "non_compliant",
            f"flow {flow_id[:64]} breaks {len(violations)} compliance rule(s)",
            problems=[_violation_out(v) for v in violations],
        )
    return flow, prompts


def _violations(numbers: dict[str, NumberConfig], flow: Flow) -> list[compliance.Violation]:
    """The compliance check of a flow for every number that uses it (or alone)."""
    users = {k: v for k, v in numbers.items() if v.flow == flow.id}
    if not users:
        return compliance.check_flow(flow)
    return compliance.check_all(users, {flow.id: flow})


def _violation_out(v: compliance.Violation) -> dict[str, Any]:
    return {
        "path": f"numbers.{v.number}" if v.number else "flow",
        "rule": v.rule,
        "nodes": list(v.path),
        "message": str(v),
    }


def _strip(path: str, flow_id: str) -> str:
    return path[len(flow_id) + 1 :] if path.startswith(flow_id + ".") else path


async def _ensure_prompts(request: web.Request, specs: dict[str, Any]) -> None:
    """Load (or render) prompts a change needs, or 422 naming the one that fails."""

    sb = request.app[switchboard_key]
    sources = {}
    for field, spec in specs.items():
        src = spec if not isinstance(spec, str) else prompt_source(spec, sb.config.prompts_dir)
        if src is None:
            raise ApiError(422, "invalid", f"{field}: no prompt file {spec}.wav", field=field)
        if src.id not in sb.prompts:
            sources[src.id] = src
    if not sources:
        return
    cache = request.app[settings_key].data_dir / "cache" / "tts"
    try:
        lib = await asyncio.to_thread(PromptLibrary.load, sources, cache, "api")
    except IvrError as exc:
        raise ApiError(422, "invalid", f"prompt: {exc}") from None
    for pid in lib.ids():
        sb.prompts.add(lib.get(pid))


async def put_flow(request: web.Request) -> web.Response:

    actor = await require(request, "flows.write")
    flow_id = request.match_info["flow_id"]
    if not 1 <= len(flow_id) <= 64 or not flow_id.replace("_", "").replace("-", "").isalnum():
        raise ApiError(
            422, "invalid", "a flow id has 1 to 64 letters, digits, _ or -", field="flow_id"
        )
    body = await read_json(request)
    try:
        flow, prompts = await _check_flow(request, flow_id, body)
    except ApiError:
        await audit_of(request).record(
            actor, "flows.update", "failed", object_type="flow", object_id=flow_id
        )
        raise
    await _ensure_prompts(request, prompts)
    store = store_of(request)
    await store.catalog.save_flow(flow.id, flow.version, flow.definition())
    await store.catalog.set_flow_head(flow.id, flow.version, source="api")
    request.app[switchboard_key].set_flow(flow)
    await audit_of(request).record(
        actor,
        "flows.update",
        "ok",
        object_type="flow",
        object_id=flow_id,
        detail={"version": flow.version},
    )
    return web.json_response({"id": flow.id, "version": flow.version, **flow.definition()})


async def check_flow(request: web.Request) -> web.Response:
    actor = await require(request, "flows.write")
    body = await read_json(request)
    flow_id = body.pop("id", "draft")
    if not isinstance(flow_id, str):
        raise ApiError(422, "invalid", "id: must be a string", field="id")
    try:
        flow, _ = await _check_flow(request, flow_id, body)
    except ApiError as exc:
        await audit_of(request).record(
            actor,
            "flows.check",
            "ok",
            object_type="flow",
            object_id=flow_id[:64],
            detail={"valid": False},
        )
        return web.json_response({"valid": False, "problems": exc.extra["problems"]})
    await audit_of(request).record(
        actor,
        "flows.check",
        "ok",
        object_type="flow",
        object_id=flow_id[:64],
        detail={"valid": True},
    )
    return web.json_response({"valid": True, "problems": [], "version": flow.version})


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
