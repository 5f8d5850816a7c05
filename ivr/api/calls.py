"""``/v1/calls``: calls, their decision trace, and live pause/resume of recording."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ivr.access.policy import Action, permits, scope
from ivr.api.base import (
    ApiError,
    Route,
    audit_of,
    query_limit,
    read_model,
    refuse_object,
    require,
    store_of,
)
from ivr.errors import NotFound, StoreError
from ivr.privacy.redact import mask_number
from ivr.server.keys import switchboard_key
from ivr.store import CallRow, RecordingRow, Store, User

# Events in a page: GET /v1/calls/{id} holds the first page, /events the rest.
EVENTS_PAGE = 500

CALL_FIELDS = (
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
    "transport",
    "sip_call_id",
    "media",
)


def call_out(call: CallRow) -> dict[str, Any]:
    """A call as the API shows it: the fields of ``CALL_FIELDS``."""
    return {k: getattr(call, k) for k in CALL_FIELDS}


async def list_calls(request: web.Request) -> web.Response:
    user = await require(request, "calls.read")
    own = scope(user, "calls.read") == "own"
    try:
        items, nxt = await store_of(request).calls.page(
            agent_id=user.id if own else None,
            cursor=request.query.get("cursor"),
            limit=query_limit(request),
        )
    except StoreError as exc:
        raise ApiError(422, "invalid", f"cursor: {exc}", field="cursor") from None
    await audit_of(request).record(
        user, "calls.list", "ok", object_type="call", detail={"count": len(items)}
    )
    return web.json_response({"items": [call_out(c) for c in items], "next": nxt})


async def visible_call(request: web.Request, action: Action) -> tuple[User, CallRow]:
    """The call of the path, if the user may see it; else the 404 that hides it (audited)."""
    user = await require(request, action)
    call_id = request.match_info["call_id"]
    try:
        call = await store_of(request).calls.get(call_id)
    except NotFound:
        raise await refuse_object(request, user, action, "call", call_id) from None
    if not permits(user, action, {"agent_id": call.agent_id}):
        raise await refuse_object(request, user, action, "call", call_id)
    return user, call


async def get_call(request: web.Request) -> web.Response:
    user, call = await visible_call(request, "calls.read")
    out = await call_detail(store_of(request), call)
    await audit_of(request).record(user, "calls.read", "ok", object_type="call", object_id=call.id)
    return web.json_response(out)


async def call_detail(store: Store, call: CallRow) -> dict[str, Any]:
    """``GET /v1/calls/{id}``'s answer: the call, its consents, recordings and first events."""
    out = call_out(call)
    out["consents"] = [c.public() for c in await store.calls.consents(call.id)]
    recordings = await store.recordings.for_call(call.id)
    out["recordings"] = [r.id for r in recordings]
    out["pauses"] = {r.id: r.pauses for r in recordings}
    out["gaps"] = {r.id: r.gaps for r in recordings}
    # The first page of the timeline; the rest from /v1/calls/{id}/events.
    events, nxt = await store.calls.events_page(call.id, limit=EVENTS_PAGE)
    out["events"] = [e.public() for e in events]
    out["events_next"] = None if nxt is None else str(nxt)
    out["recording_trace"] = _trace(call, recordings)
    return out


async def list_events(request: web.Request) -> web.Response:
    """``GET /v1/calls/{id}/events``: a call's timeline, a page at a time."""
    user, call = await visible_call(request, "calls.read")
    raw = request.query.get("after", "0")
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(
            422, "invalid", "'after' must be a whole number (a page's next)", field="after"
        )
    items, nxt = await store_of(request).calls.events_page(
        call.id, after=int(raw), limit=query_limit(request, default=EVENTS_PAGE, most=1000)
    )
    await audit_of(request).record(
        user, "calls.events", "ok", object_type="call", object_id=call.id
    )
    return web.json_response(
        {"items": [e.public() for e in items], "next": None if nxt is None else str(nxt)}
    )


def _trace(call: CallRow, recordings: list[RecordingRow]) -> list[str]:
    """The recording decision in plain words."""
    d = call.recording_decision
    if not d:
        return ["The call never reached a line, so no recording was considered."]
    lines = [
        f"Number {mask_number(call.number)}: recording is "
        f"{'on' if d['number_recording'] else 'off'}.",
        f"Line {d['line']!r} {'records' if d['line_records'] else 'does not record'}.",
        (
            f"Consent mode {d['consent_mode']}: consent {d['consent'] or 'never asked'}; "
            f"notices played: {', '.join(d['notices']) or 'none'}."
        ),
        (
            f"Sample: draw {d['sample_draw']:.2f} against {d['record_percent']}% - "
            f"{'in' if d['in_sample'] else 'out of'} the sample."
        ),
        f"Outcome: {'recorded' if d['record'] else 'not recorded'}.",
    ]
    for rec in recordings:
        pauses = rec.pauses
        spans = "; ".join(
            f"{p['start_s']:.1f} s to {p['end_s'] if p['end_s'] is not None else '?'}"
            f" s ({p['reason']})"
            for p in pauses
        )
        line = f"Recording {rec.id} ({rec.status}): " + (
            f"paused {spans}." if pauses else "never paused."
        )
        gaps = rec.gaps
        if gaps:
            line += (
                " Silence where the server stalled: "
                + "; ".join(f"{g['start_s']:.2f} s to {g['end_s']:.2f} s" for g in gaps)
                + "."
            )
        if rec.status == "truncated":
            line += (
                f" It ends early, at {rec.truncated_at_s or 0:.1f} s: the server could "
                f"not write it ({rec.truncated_reason})."
            )
        lines.append(line)
    return lines


class PauseBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    reason: str = Field(default="api", min_length=1, max_length=200)


async def _control(request: web.Request, pause: bool) -> web.Response:

    user = await require(request, "calls.recording_control")
    call_id = request.match_info["call_id"]
    body = await read_model(request, PauseBody) if request.can_read_body else PauseBody()
    session = request.app[switchboard_key].calls.get(call_id)
    agent_id = session.seat.user_id if session is not None and session.seat else None
    if session is None or not permits(user, "calls.recording_control", {"agent_id": agent_id}):
        raise await refuse_object(request, user, "calls.recording_control", "live call", call_id)
    if session.recording is None:
        raise ApiError(409, "not_recording", "this call is not being recorded")
    changed = session.pause_recording(body.reason) if pause else session.resume_recording()
    await audit_of(request).record(
        user,
        "calls.recording_pause" if pause else "calls.recording_resume",
        "ok",
        object_type="call",
        object_id=call_id,
        detail={"changed": changed},
    )
    return web.json_response(
        {"call_id": call_id, "recording": "paused" if session.recording.paused else "on"}
    )


async def pause(request: web.Request) -> web.Response:
    return await _control(request, True)


async def resume(request: web.Request) -> web.Response:
    return await _control(request, False)


ROUTES: list[Route] = [
    ("GET", "/v1/calls", list_calls),
    ("GET", "/v1/calls/{call_id}", get_call),
    ("GET", "/v1/calls/{call_id}/events", list_events),
    ("POST", "/v1/calls/{call_id}/recording/pause", pause),
    ("POST", "/v1/calls/{call_id}/recording/resume", resume),
]
