"""``/v1/privacy``: access exports (ZIP), erasures (receipts), retention runs.

The work and its rules are :mod:`ivr.services.privacy`'s, shared with ``ivr
erase``, ``ivr export`` and ``ivr purge``; these handlers parse, check the
role, and stream the ZIP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ivr import privacy, stamp
from ivr.access.policy import permits
from ivr.api.base import (
    ApiError,
    Route,
    current_user,
    problems_of,
    read_json,
    read_model,
    require,
    services_of,
)
from ivr.e164 import is_e164
from ivr.services import privacy as services


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


async def create_export(request: web.Request) -> web.StreamResponse:
    user = await require(request, "privacy.export")
    body = await read_model_lax(request, ExportBody)
    kind: privacy.Kind = "contact" if body.contact else "agent"
    value = body.contact or body.agent_id
    assert value is not None
    done = await services.export(
        services_of(request),
        user,
        kind,
        value,
        since=stamp.iso(_aware(body.since)) if body.since else None,
        until=stamp.iso(_aware(body.until)) if body.until else None,
    )
    # Opened, then unlinked: the ZIP is read from the open file, and no copy
    # is left in the data folder however the response ends.
    f = await asyncio.to_thread(done.path.open, "rb")
    with f:
        with contextlib.suppress(OSError):
            done.path.unlink()
        resp = web.StreamResponse(
            headers={
                "Content-Type": "application/zip",
                "Content-Disposition": 'attachment; filename="export.zip"',
                "Cache-Control": "private, no-store",
            }
        )
        resp.content_length = os.fstat(f.fileno()).st_size
        await resp.prepare(request)
        while chunk := await asyncio.to_thread(f.read, 1 << 16):
            await resp.write(chunk)
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
    kind: privacy.Kind = "contact" if body.contact else "agent"
    value = body.contact or body.agent_id
    assert value is not None
    receipt = await services.erase(services_of(request), user, kind, value)
    return web.json_response(receipt, status=201)


async def run_retention(request: web.Request) -> web.Response:
    user = await require(request, "privacy.retention")
    receipt = await services.purge(services_of(request), user)
    return web.json_response(receipt)


class LiftBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contact: str = Field(max_length=16)

    @field_validator("contact")
    @classmethod
    def e164(cls, value: str) -> str:
        if not is_e164(value):
            raise ValueError("must be an E.164 number like +15550100")
        return value


async def list_blocks(request: web.Request) -> web.Response:
    user = await require(request, "privacy.blocks")
    return web.json_response({"items": await services.blocks(services_of(request), user)})


async def lift_block(request: web.Request) -> web.Response:
    user = await require(request, "privacy.blocks")
    body = await read_model(request, LiftBody)
    return web.json_response(await services.lift_block(services_of(request), user, body.contact))


ROUTES: list[Route] = [
    ("POST", "/v1/privacy/exports", create_export),
    ("POST", "/v1/privacy/erasures", create_erasure),
    ("POST", "/v1/privacy/retention/run", run_retention),
    ("GET", "/v1/privacy/blocks", list_blocks),
    ("POST", "/v1/privacy/blocks/lift", lift_block),
]
