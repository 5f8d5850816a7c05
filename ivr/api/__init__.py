"""The REST API under ``/v1`` (docs/access.md).

Every handler asks :func:`ivr.access.policy.permits` before it touches data, and
records what it did in the audit log. Errors are JSON
``{"error": {"code", "message"}}``; the middleware turns every failure,
unknown routes included, into that shape, never a traceback.
"""

from __future__ import annotations

from aiohttp import web

from ivr.api import admin, auth, calls, privacy, recordings, reports
from ivr.api.base import MAX_BODY_BYTES, error_middleware
from ivr.api.openapi import MetricsAccess, document
from ivr.server.keys import settings_key

__all__ = ["MAX_BODY_BYTES", "add_routes", "error_middleware"]


def add_routes(app: web.Application) -> None:
    for module in (auth, calls, recordings, admin, reports, privacy):
        for method, path, handler in module.ROUTES:
            app.router.add_route(method, path, handler)

    async def openapi(request: web.Request) -> web.Response:

        settings = request.app[settings_key]
        metrics: MetricsAccess = (
            "elsewhere"
            if settings.metrics_port is not None
            else "token"
            if settings.metrics_token is not None
            else "open"
        )
        return web.json_response(document(metrics))

    app.router.add_get("/v1/openapi.json", openapi)
