"""Fuzzing the API from its own OpenAPI document: generated paths, queries and bodies,
for every role and for no one. No 5xx, and every error is the documented JSON shape."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr.api.openapi import document
from tests.conftest import AppFactory, Caller, add_user

OPERATIONS = sorted(
    (path, method)
    for path, ops in document()["paths"].items()
    for method in ops
    if method != "parameters"
)
TRICKY = [
    "..",
    "../..",
    "%2e%2e%2f",
    "..%2F..%2Fivr.sqlite3",
    "/etc/passwd",
    "r_0",
    "c_0",
    "+15550100",
    "%00",
    "ü" * 3,
    "x" * 300,
    " ",
    "null",
    "-1",
    "0",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def _body_for(schema: dict[str, Any] | None) -> st.SearchStrategy[Any]:
    if not schema or "properties" not in schema:
        return json_values
    props = {k: json_values for k in schema["properties"]}
    return st.fixed_dictionaries({}, optional=props) | json_values


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    path, method = draw(st.sampled_from(OPERATIONS))
    op = document()["paths"][path][method]
    segment = st.sampled_from(TRICKY) | st.text(
        alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="/?#"),
        min_size=1,
        max_size=30,
    )
    url = path
    for name in ("user_id", "team_id", "number_id", "flow_id", "call_id", "recording_id"):
        if "{" + name + "}" in url:
            url = url.replace("{" + name + "}", draw(segment))
    query = {
        p["name"]: draw(
            st.text(max_size=30) | st.sampled_from(["-1", "0", "2100-01-01", "abc", "%%%"])
        )
        for p in op.get("parameters", [])
        if p["in"] == "query" and draw(st.booleans())
    }
    body = None
    if "requestBody" in op or method in ("post", "put", "patch"):
        schema = op.get("requestBody", {}).get("content", {}).get("application/json", {})
        body = draw(_body_for(schema.get("schema")))
    role = draw(st.sampled_from(["agent", "supervisor", "admin", "owner", None]))
    return {"method": method.upper(), "url": url, "query": query, "body": body, "role": role}


@pytest.fixture
async def fuzz_client(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> tuple[TestClient[web.Request, web.Application], dict[str, str]]:
    client = await start_app()
    tokens = {
        role: await add_user(client, f"{role}@example.com", role)
        for role in ("agent", "supervisor", "admin", "owner")
    }
    caller = new_caller(client)
    await caller.dial("+15550101")
    await caller.wait_for("connected")
    await caller.hangup()
    await caller.closed_wait()
    return client, tokens


@settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
async def test_generated_requests_never_break_the_api(
    fuzz_client: tuple[TestClient[web.Request, web.Application], dict[str, str]],
    case: dict[str, Any],
) -> None:
    client, tokens = fuzz_client
    headers = {"Authorization": f"Bearer {tokens[case['role']]}"} if case["role"] else {}
    kwargs: dict[str, Any] = {"headers": headers, "params": case["query"]}
    if case["body"] is not None:
        kwargs["data"] = json.dumps(case["body"])
        headers["Content-Type"] = "application/json"
    try:
        resp = await client.request(case["method"], case["url"], **kwargs)
    except ValueError:
        return  # a URL the HTTP client itself refuses to send
    assert resp.status < 500, (case, await resp.text())
    if resp.status >= 400:
        payload = await resp.json()
        assert set(payload) == {"error"}
        assert isinstance(payload["error"]["code"], str)
        assert isinstance(payload["error"]["message"], str)
    public = ("/v1/openapi.json", "/v1/auth/login", "/metrics")  # no token needed
    if case["role"] is None and not case["url"].startswith(public):
        assert resp.status in (401, 404, 405), case
