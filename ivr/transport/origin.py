"""Which web pages may open the call and agent WebSockets: the Origin rule.

RFC 6455 section 10.2: a browser lets any page open a WebSocket to any
server and says which page in ``Origin``; the server must check it.
"""

from __future__ import annotations

import logging

from aiohttp import web

from ivr.config import canonical_origin
from ivr.server.keys import allowed_origins_key

log = logging.getLogger("ivr.ws")


def own_origin(request: web.Request) -> str | None:
    """This server's origin as the client reached it: the scheme and the ``Host`` header.

    Behind a proxy that ends TLS, the scheme is the one the proxy reports
    (``Forwarded: proto=``, RFC 7239 section 5.4, or ``X-Forwarded-Proto``).
    Only the scheme is taken from those headers: a browser cannot set them
    on a WebSocket request, and the check below guards against browsers.
    """
    scheme = request.scheme
    forwarded = request.forwarded[0].get("proto", "") if request.forwarded else ""
    proxied = forwarded or request.headers.get("X-Forwarded-Proto", "").split(",")[0]
    if proxied.strip().lower() in ("http", "https"):
        scheme = proxied.strip().lower()
    return canonical_origin(f"{scheme}://{request.host}")


def check_origin(request: web.Request) -> web.Response | None:
    """The 403 for a WebSocket opened by a page of another origin (None: allowed).

    Checked before the upgrade.

    A browser lets any page open a WebSocket to any server, and says which
    page in ``Origin``; the server must check it (RFC 6455 section 10.2), or
    any web site could make its visitors' browsers place calls here
    (cross-site WebSocket hijacking). Allowed: no ``Origin`` at all (tools
    and the load runner, not browsers, which always send one), this server's
    own origin (:func:`own_origin`), and the config's
    ``http.allowed_origins``. ``null`` (a sandboxed or local page) and
    anything else are refused.
    """
    raw = request.headers.get("Origin")
    if raw is None:
        return None
    origin = canonical_origin(raw.strip())
    if origin is not None and (
        origin == own_origin(request) or origin in request.app[allowed_origins_key]
    ):
        return None
    shown = raw[:200]
    log.info("refused a WebSocket on %s from origin %r", request.path, shown)
    message = (
        f"origin {shown!r} may not open {request.path}: only this server's own origin "
        "and the config's http.allowed_origins may"
    )
    return web.json_response(
        {"error": {"code": "forbidden", "message": message, "origin": shown}}, status=403
    )
