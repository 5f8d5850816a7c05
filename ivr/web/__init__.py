"""The web pages: the softphone (``/``), the QA console (``/qa``), the admin dashboard (``/admin``).

docs/web.md. The pages are plain HTML, CSS and JavaScript modules
served from this package's ``static`` folder with no build step. They hold no
data and no rights of their own: every action goes through the REST API or
the WebSockets with the user's bearer token, so the API's access rules
decide what anyone sees (docs/access.md). Recordings are never static files; the
QA console streams them from ``/v1/recordings/{id}/audio`` (docs/web.md says
how).

Only the files that exist in the folder when the routes are added are
served, looked up by exact name in a table, so no request path ever reaches
the file system. Every response carries a strict Content-Security-Policy:
scripts, styles, workers and connections from this origin only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

from aiohttp import web

__all__ = ["PAGES", "STATIC_DIR", "add_routes"]

STATIC_DIR: Final = Path(__file__).with_name("static")

PAGES: Final = {"/": "softphone.html", "/qa": "qa.html", "/admin": "admin.html"}
"""Each page's path and the file that is served for it."""

_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

# 'self' covers ws: and wss: to this host in CSP Level 3 browsers. media-src
# allows blob: for the QA console's fallback player (a Blob of the fetched WAV).
_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self'; worker-src 'self'; manifest-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_HEADERS: Final = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "microphone=(self), camera=(), geolocation=(), payment=(), usb=()",
    # Revalidate every time (Last-Modified makes that cheap), so a new
    # version of a page never runs with an old module.
    "Cache-Control": "no-cache",
}

# The QA console's service worker adds the bearer token to the audio
# element's Range requests; it must control /qa, above its own folder.
_SERVICE_WORKER: Final = "qa-sw.js"


def _files(folder: Path) -> dict[str, Path]:
    return {
        p.name: p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix in _TYPES and not p.name.startswith(".")
    }


def _response(path: Path) -> web.FileResponse:
    headers = {**_HEADERS, "Content-Type": _TYPES[path.suffix]}
    if path.name == _SERVICE_WORKER:
        headers["Service-Worker-Allowed"] = "/qa"
    return web.FileResponse(path, headers=headers)


def add_routes(app: web.Application) -> None:
    """Serve the three pages and ``/static/<name>`` (a flat folder, by exact name)."""
    files = _files(STATIC_DIR)
    missing = [name for name in PAGES.values() if name not in files]
    if missing:
        raise RuntimeError(f"ivr.web: missing page file(s) {missing} in {STATIC_DIR}")

    def page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        path = files[name]

        async def handler(request: web.Request) -> web.StreamResponse:
            return _response(path)

        return handler

    async def static(request: web.Request) -> web.StreamResponse:
        path = files.get(request.match_info["name"])
        if path is None:
            raise web.HTTPNotFound()
        return _response(path)

    for route, name in PAGES.items():
        app.router.add_get(route, page(name))
    app.router.add_get("/static/{name}", static)
