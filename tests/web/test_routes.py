"""``ivr.web.add_routes``: what is served, with which headers, and what is not."""

from __future__ import annotations

import pytest

from ivr.web import PAGES, STATIC_DIR
from tests.web.conftest import Serve


@pytest.mark.parametrize(
    ("path", "title"), [("/", "Softphone"), ("/qa", "QA console"), ("/admin", "Admin dashboard")]
)
async def test_each_page_is_served_with_a_strict_policy(
    serve: Serve, path: str, title: str
) -> None:
    client = await serve()
    resp = await client.get(path)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    assert f"<title>{title} · ivr</title>" in await resp.text()
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self';" in csp
    assert "frame-ancestors 'none'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert "microphone=(self)" in resp.headers["Permissions-Policy"]


async def test_static_files_by_exact_name_only(serve: Serve) -> None:
    client = await serve()
    js = await client.get("/static/softphone.js")
    assert js.status == 200
    assert js.headers["Content-Type"] == "text/javascript; charset=utf-8"
    css = await client.get("/static/base.css")
    assert css.headers["Content-Type"] == "text/css; charset=utf-8"
    sw = await client.get("/static/qa-sw.js")
    assert sw.headers["Service-Worker-Allowed"] == "/qa"
    for bad in (
        "/static/nothing.js",
        "/static/..%2F__init__.py",
        "/static/%2e%2e/__init__.py",
        "/static/../__init__.py",
        "/static/",
        "/static/.hidden",
    ):
        resp = await client.get(bad)
        assert resp.status == 404, bad
        assert (await resp.json())["error"]["code"] == "not_found"


def test_every_page_and_module_it_names_exists() -> None:
    """No page links a stylesheet or a module that the folder does not hold."""
    import re

    names = {p.name for p in STATIC_DIR.iterdir()}
    for page in PAGES.values():
        html = (STATIC_DIR / page).read_text()
        for ref in re.findall(r'(?:src|href)="/static/([^"]+)"', html):
            assert ref in names, f"{page} names /static/{ref}"
    for module in STATIC_DIR.glob("*.js"):
        for ref in re.findall(r'from "\./([^"]+)"', module.read_text()):
            assert ref in names, f"{module.name} imports ./{ref}"
