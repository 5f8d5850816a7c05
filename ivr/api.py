"""The REST API under ``/v1`` (ACCESS.md), for the parts the core serves now.

Every handler asks :func:`ivr.policy.permits`; errors are JSON
``{"error": {"code", "message"}}`` (the middleware turns every failure,
unknown routes included, into that shape; never a traceback).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ivr.errors import AuthError, NotFound, StoreError
from ivr.policy import Action, permits, scope
from ivr.store import Store, User

log = logging.getLogger("ivr.api")

MAX_BODY_BYTES = 64 * 1024
user_key = "ivr.user"
token_key = "ivr.token"


def error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "invalid",
}


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _CODES.get(exc.status, "http_error")
        message = exc.reason if exc.status != 404 else f"no route {request.path}"
        resp = error(exc.status, code, message)
        if exc.status == 405 and "Allow" in exc.headers:
            resp.headers["Allow"] = exc.headers["Allow"]
        return resp
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error(500, "internal", "internal error")


def _store(request: web.Request) -> Store:
    from ivr.app import store_key

    return request.app[store_key]


async def current_user(request: web.Request) -> User:
    from ivr.app import authenticator_key

    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not header[7:].strip():
        raise ApiError(401, "unauthorized", "missing bearer token")
    try:
        return await request.app[authenticator_key].user(header[7:].strip())
    except AuthError as exc:
        raise ApiError(401, "unauthorized", str(exc)) from None


async def require(request: web.Request, action: Action) -> User:
    user = await current_user(request)
    if not permits(user, action):
        raise ApiError(403, "forbidden", f"role {user.role} may not do {action}")
    return user


async def read_json(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(422, "invalid", "the body must be a JSON object")
    return body


def _str_field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ApiError(422, "invalid", f"'{name}' is required and must be a non-empty string")
    return value


# -- auth ----------------------------------------------------------------------


async def login(request: web.Request) -> web.Response:
    from ivr.app import authenticator_key

    body = await read_json(request)
    email, password = _str_field(body, "email"), _str_field(body, "password")
    try:
        token, user = await request.app[authenticator_key].login(email, password)
    except AuthError as exc:
        raise ApiError(401, "unauthorized", str(exc)) from None
    return web.json_response({"token": token, "user": user.public()})


async def logout(request: web.Request) -> web.Response:
    from ivr.app import authenticator_key

    await current_user(request)
    await request.app[authenticator_key].logout(request.headers["Authorization"][7:].strip())
    return web.Response(status=204)


async def me(request: web.Request) -> web.Response:
    user = await require(request, "session")
    return web.json_response(user.public())


# -- calls -----------------------------------------------------------------------


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= 500:
        raise ApiError(422, "invalid", "'limit' must be a whole number from 1 to 500")
    return int(raw)


async def list_calls(request: web.Request) -> web.Response:
    user = await require(request, "calls.read")
    own = scope(user, "calls.read") == "own"
    try:
        items, nxt = await _store(request).list_calls(
            agent_id=user.id if own else None,
            cursor=request.query.get("cursor"),
            limit=_limit(request),
        )
    except StoreError as exc:
        raise ApiError(422, "invalid", f"'cursor': {exc}") from None
    return web.json_response({"items": [_call_out(c) for c in items], "next": nxt})


async def get_call(request: web.Request) -> web.Response:
    user = await require(request, "calls.read")
    store = _store(request)
    call_id = request.match_info["call_id"]
    try:
        call = await store.get_call(call_id)
    except NotFound:
        raise ApiError(404, "not_found", f"no call {call_id[:64]}") from None
    if not permits(user, "calls.read", call):
        raise ApiError(404, "not_found", f"no call {call_id[:64]}")
    out = _call_out(call)
    out["consents"] = await store.consents_for_call(call_id)
    out["recordings"] = [r["id"] for r in await store.recordings_for_call(call_id)]
    out["events"] = await store.call_events(call_id)
    return web.json_response(out)


def _call_out(call: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "id",
        "number",
        "contact",
        "flow_id",
        "flow_version",
        "codec",
        "sample_rate",
        "client_ref",
        "started_at",
        "connected_at",
        "ended_at",
        "end_reason",
        "line",
        "team",
        "agent_id",
        "agent_name",
        "recording_decision",
        "stats",
    )
    return {k: call.get(k) for k in keep}


# -- recordings ------------------------------------------------------------------


async def _recording_out(store: Store, rec: dict[str, Any]) -> dict[str, Any]:
    consents = await store.consents_for_call(rec["call_id"])
    return {
        "id": rec["id"],
        "call_id": rec["call_id"],
        "agent_id": rec["agent_id"],
        "agent_name": rec["agent_name"],
        "contact": rec["contact"],
        "number": rec["number"],
        "line": rec["line"],
        "status": rec["status"],
        "started_at": rec["started_at"],
        "ended_at": rec["ended_at"],
        "duration_s": rec["duration_s"],
        "sample_rate": rec["sample_rate"],
        "channels": rec["channels"],
        "format": rec["format"],
        "sha256": rec["sha256"],
        "size_bytes": rec["size_bytes"],
        "consent": consents[-1] if consents else None,
        "transcript_available": False,
    }


async def list_recordings(request: web.Request) -> web.Response:
    user = await require(request, "recordings.read")
    own = scope(user, "recordings.read") == "own"
    q = request.query
    agent_id = q.get("agent_id")
    if own:
        if agent_id is not None and agent_id != user.id:
            return web.json_response({"items": [], "next": None})
        agent_id = user.id
    store = _store(request)
    try:
        items, nxt = await store.list_recordings(
            agent_id=agent_id,
            contact=q.get("contact"),
            since=q.get("since"),
            until=q.get("until"),
            cursor=q.get("cursor"),
            limit=_limit(request),
        )
    except StoreError as exc:
        raise ApiError(422, "invalid", f"'cursor': {exc}") from None
    return web.json_response(
        {"items": [await _recording_out(store, r) for r in items], "next": nxt}
    )


async def _visible_recording(request: web.Request, action: Action) -> tuple[Store, dict[str, Any]]:
    user = await require(request, action)
    store = _store(request)
    rec_id = request.match_info["recording_id"]
    try:
        rec = await store.get_recording(rec_id)
    except NotFound:
        raise ApiError(404, "not_found", f"no recording {rec_id[:64]}") from None
    if not permits(user, action, rec) or rec["status"] == "recording":
        raise ApiError(404, "not_found", f"no recording {rec_id[:64]}")
    return store, rec


async def get_recording(request: web.Request) -> web.Response:
    store, rec = await _visible_recording(request, "recordings.read")
    return web.json_response(await _recording_out(store, rec))


async def recording_audio(request: web.Request) -> web.StreamResponse:
    store, rec = await _visible_recording(request, "recordings.audio")
    try:
        path = store.recording_path(rec["path"])
    except NotFound:
        raise ApiError(404, "not_found", "recording file missing") from None
    if not path.is_file():
        raise ApiError(404, "not_found", "recording file missing")
    return web.FileResponse(
        path, headers={"Content-Type": "audio/wav", "Cache-Control": "private, no-store"}
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/auth/login", login)
    app.router.add_post("/v1/auth/logout", logout)
    app.router.add_get("/v1/me", me)
    app.router.add_get("/v1/calls", list_calls)
    app.router.add_get("/v1/calls/{call_id}", get_call)
    app.router.add_get("/v1/recordings", list_recordings)
    app.router.add_get("/v1/recordings/{recording_id}", get_recording)
    app.router.add_get("/v1/recordings/{recording_id}/audio", recording_audio)
