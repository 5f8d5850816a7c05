"""Analytics (summary and CSV), the audit log, billing."""

from __future__ import annotations

import csv
import io

from aiohttp import web

from ivr.api.base import ApiError, Route, audit_of, query_limit, query_time, require, store_of
from ivr.privacy.csvcell import write_row
from ivr.services import analytics


async def summary(request: web.Request) -> web.Response:
    user = await require(request, "analytics.read")
    data = await analytics.summary(
        store_of(request), query_time(request, "since"), query_time(request, "until")
    )
    await audit_of(request).record(user, "analytics.read", "ok", object_type="analytics")
    return web.json_response(data)


async def export(request: web.Request) -> web.Response:
    user = await require(request, "analytics.read")
    data = await analytics.summary(
        store_of(request), query_time(request, "since"), query_time(request, "until")
    )
    out = io.StringIO()
    w = csv.writer(out)
    cols = [
        "calls",
        "answered",
        "recorded",
        "consent_asked",
        "consent_granted",
        "consent_rate",
        "average_handle_time_s",
    ]
    write_row(w, ["group", "key", *cols])
    write_row(w, ["all", "all", *(data[c] for c in cols)])
    for group in ("by_team", "by_agent"):
        for row in data[group]:
            # A team's or bot's name is text from the config: never a formula.
            write_row(w, [group.removeprefix("by_"), row["key"], *(row[c] for c in cols)])
    await audit_of(request).record(user, "analytics.export", "ok", object_type="analytics")
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="analytics.csv"'},
    )


async def audit_log(request: web.Request) -> web.Response:
    user = await require(request, "audit.read")
    after = request.query.get("after", "0")
    if not after.isdigit():
        raise ApiError(422, "invalid", "'after' must be a whole number", field="after")
    limit = query_limit(request, 100, 1000)
    q = request.query
    items = await audit_of(request).entries(
        after=int(after),
        limit=limit,
        action=q.get("action"),
        actor_id=q.get("actor_id"),
        object_id=q.get("object_id"),
    )
    await audit_of(request).record(
        user, "audit.read", "ok", object_type="audit", detail={"count": len(items)}
    )
    nxt = str(items[-1].seq) if len(items) == limit else None
    return web.json_response({"items": [e.public() for e in items], "next": nxt})


async def billing(request: web.Request) -> web.Response:
    user = await require(request, "billing.read")
    data = await analytics.billing(
        store_of(request), query_time(request, "since"), query_time(request, "until")
    )
    await audit_of(request).record(user, "billing.read", "ok", object_type="billing")
    return web.json_response(data)


ROUTES: list[Route] = [
    ("GET", "/v1/analytics/summary", summary),
    ("GET", "/v1/analytics/export", export),
    ("GET", "/v1/audit", audit_log),
    ("GET", "/v1/billing", billing),
]
