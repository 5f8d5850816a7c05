"""``/v1/privacy``: access exports (ZIP), erasures (receipts), retention runs."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ivr import privacy, stamp
from ivr.access.policy import permits
from ivr.api.base import (
    ApiError,
    Route,
    audit_of,
    authenticator_of,
    current_user,
    problems_of,
    read_json,
    read_model,
    require,
    store_of,
)
from ivr.e164 import is_e164
from ivr.privacy.redact import mask_number
from ivr.stamp import new_id


class Subject(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    contact: str | None = Field(default=None, max_length=16)
    agent_id: str | None = Field(default=None, max_length=80)

    @field_validator("contact")
    @classmethod
    def e164(cls, value: str | None) -> str | None:
        if value is not None and not is_e164(value):
            raise ValueError("must be an E.164 number like +15550100")
        return value

    @model_validator(mode="after")
    def one_subject(self) -> Subject:
        if (self.contact is None) == (self.agent_id is None):
            raise ValueError("give exactly one of contact or agent_id")
        return self


class ExportBody(Subject):
    since: datetime | None = None
    until: datetime | None = None


def _subject_label(kind: str, value: str) -> str:
    return mask_number(value) if kind == "contact" else value


async def create_export(request: web.Request) -> web.StreamResponse:
    user = await require(request, "privacy.export")
    body = await read_model_lax(request, ExportBody)
    kind: privacy.Kind = "contact" if body.contact else "agent"
    value = body.contact or body.agent_id
    assert value is not None
    # An Agent exports only their own data: never a contact, never another agent.
    if not permits(user, "privacy.export", {"agent_id": value if kind == "agent" else None}):
        await audit_of(request).record(
            user, "privacy.export", "refused", object_type=kind, detail={"why": "own data only"}
        )
        raise ApiError(403, "forbidden", "an Agent may export only their own data")
    since, until = privacy.default_window()
    if body.since:
        since = stamp.iso(_aware(body.since))
    if body.until:
        until = stamp.iso(_aware(body.until))
    if since >= until:
        raise ApiError(422, "invalid", "since must be before until", field="since")
    store = store_of(request)
    folder = store.data_dir / "exports"
    folder.mkdir(exist_ok=True)
    out = folder / f"{new_id('x')}.zip"
    manifest = await privacy.export(store, privacy.ExportRequest(kind, value, since, until), out)
    await audit_of(request).record(
        user,
        "privacy.export",
        "ok",
        object_type=kind,
        object_id=_subject_label(kind, value),
        detail={"counts": manifest["counts"]},
    )
    resp = web.StreamResponse(
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": 'attachment; filename="export.zip"',
            "Cache-Control": "private, no-store",
        }
    )
    resp.content_length = out.stat().st_size
    await resp.prepare(request)
    try:
        with out.open("rb") as f:
            while chunk := await asyncio.to_thread(f.read, 1 << 16):
                await resp.write(chunk)
    finally:
        with contextlib.suppress(OSError):
            out.unlink()
    await resp.write_eof()
    return resp


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


async def read_model_lax(request: web.Request, model: type[ExportBody]) -> ExportBody:
    # since/until arrive as strings: validate them in lax mode (ISO 8601 parsing).
    from pydantic import ValidationError

    raw = await read_json(request)
    try:
        return model.model_validate(raw, strict=False)
    except ValidationError as exc:
        problems = problems_of(exc)
        raise ApiError(
            422,
            "invalid",
            f"{problems[0]['path'] or 'body'}: {problems[0]['message']}",
            field=problems[0]["path"],
            problems=problems,
        ) from None


async def create_erasure(request: web.Request) -> web.Response:
    user = await current_user(request)
    if not (permits(user, "privacy.erase_contact") or permits(user, "privacy.erase_agent")):
        user = await require(request, "privacy.erase_contact")  # audited 403
    body = await read_model(request, Subject)
    action: Any = "privacy.erase_contact" if body.contact else "privacy.erase_agent"
    user = await require(request, action)
    store = store_of(request)
    kind: privacy.Kind = "contact" if body.contact else "agent"
    value = body.contact or body.agent_id
    assert value is not None
    if kind == "agent":
        target = await store.users.get(value)
        if target is None:
            raise ApiError(404, "not_found", "no such agent")
        if target.role == "owner" and user.role != "owner":
            raise ApiError(403, "forbidden", "only an Owner erases an Owner")
        if target.id == user.id:
            raise ApiError(409, "conflict", "you cannot erase yourself")
    try:
        receipt = await privacy.erase(store, kind, value, user.id)
    except privacy.SubjectNotFound:
        raise ApiError(404, "not_found", f"no such {kind}") from None
    if kind == "agent":  # the user is gone, and with them every session
        authenticator_of(request).sessions_ended(
            value, "the session was ended: the user was erased"
        )
    await audit_of(request).record(
        user,
        f"privacy.erase_{kind}",
        "ok",
        object_type="erasure",
        object_id=receipt["id"],
        detail={"erased": receipt["erased"]},
    )
    return web.json_response(receipt, status=201)


async def run_retention(request: web.Request) -> web.Response:
    user = await require(request, "privacy.retention")
    receipt = await privacy.purge_expired(store_of(request), datetime.now(UTC), user.id)
    await audit_of(request).record(
        user,
        "privacy.retention",
        "ok",
        object_type="retention",
        object_id=receipt["id"],
        detail={"recordings": receipt["recordings"]},
    )
    return web.json_response(receipt)


ROUTES: list[Route] = [
    ("POST", "/v1/privacy/exports", create_export),
    ("POST", "/v1/privacy/erasures", create_erasure),
    ("POST", "/v1/privacy/retention/run", run_retention),
]
