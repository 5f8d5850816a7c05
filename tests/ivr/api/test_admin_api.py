"""Numbers, flows, users and teams through the API; changes persist and apply to the next call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web
from aiohttp.test_utils import TestClient

from ivr.server.keys import store_key
from tests.conftest import AppFactory, Caller, add_user, consent_flow, noise_frames, read_recording
from tests.ivr.api.test_http_edge import WEBSOCKET_PATHS


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def recorded(
    client: TestClient[web.Request, web.Application],
    new_caller: Callable[..., Caller],
    number: str = "+15550100",
) -> str | None:
    caller = new_caller(client)
    await caller.dial(number)
    await caller.wait_for("prompt", event="start", node="consent")
    await caller.send({"type": "dtmf", "digits": "1"})
    await caller.wait_for("connected")
    await asyncio.sleep(0.2)
    hangup = await caller.hangup()
    await caller.closed_wait()
    rec: str | None = hangup["stats"]["recording_id"]
    return rec


async def test_number_switch_applies_to_the_next_call_and_survives_a_restart(
    start_app: AppFactory, new_caller: Callable[..., Caller], tmp_path: Path
) -> None:
    data = tmp_path / "persist"
    client = await start_app(data_dir=data)
    admin = await add_user(client, "adm@example.com", "admin")
    assert await recorded(client, new_caller) is not None
    resp = await client.patch(
        "/v1/numbers/+15550100", headers=bearer(admin), json={"recording": False}
    )
    assert resp.status == 200
    assert (await resp.json())["recording"] is False
    assert await recorded(client, new_caller) is None
    await client.close()
    client2 = await start_app(data_dir=data)
    resp = await client2.post(
        "/v1/auth/login", json={"email": "adm@example.com", "password": "correct horse battery"}
    )
    admin2 = (await resp.json())["token"]
    number = await (await client2.get("/v1/numbers/+15550100", headers=bearer(admin2))).json()
    assert number["recording"] is False
    assert await recorded(client2, new_caller) is None


async def test_number_patch_validation_names_the_field(start_app: AppFactory) -> None:
    client = await start_app()
    admin = await add_user(client, "adm@example.com", "admin")
    for body, field in (
        ({"record_percent": 150}, "record_percent"),
        ({"recording": "yes"}, "recording"),
        ({"colour": "red"}, "colour"),
        ({"flow": "nope"}, "flow"),
        ({"consent_mode": None}, "consent_mode"),
    ):
        resp = await client.patch("/v1/numbers/+15550100", headers=bearer(admin), json=body)
        assert resp.status == 422, body
        err = (await resp.json())["error"]
        assert err["field"] == field
        assert field in err["message"]
    resp = await client.patch("/v1/numbers/+19999999", headers=bearer(admin), json={})
    assert resp.status == 404
    resp = await client.patch("/v1/numbers/..%2F..%2Fetc", headers=bearer(admin), json={})
    assert resp.status == 404


async def test_put_flow_is_validated_like_the_config_and_used_by_the_next_call(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    admin = await add_user(client, "adm@example.com", "admin")
    bad = consent_flow()
    bad["nodes"]["consent"]["options"]["1"]["next"] = "recorde"
    bad["nodes"]["notice"]["prompt"] = "no_such_prompt"
    resp = await client.put("/v1/flows/consent", headers=bearer(admin), json=bad)
    assert resp.status == 422
    problems = (await resp.json())["error"]["problems"]
    assert {
        "path": "nodes.consent.options.1.next",
        "message": "no node named 'recorde' in flow 'consent'",
    } in problems
    check = await (
        await client.post("/v1/flows/check", headers=bearer(admin), json={"id": "consent", **bad})
    ).json()
    assert check["valid"] is False
    assert check["problems"]
    # A good new version: straight to the line without recording, no menu.
    good = consent_flow()
    good["nodes"]["notice"]["next"] = "private"
    del good["nodes"]["consent"], good["nodes"]["recorded"]  # else unreachable: refused
    resp = await client.put("/v1/flows/consent", headers=bearer(admin), json=good)
    assert resp.status == 200, await resp.text()
    version = (await resp.json())["version"]
    caller = new_caller(client)
    await caller.dial("+15550100")
    connected = await caller.wait_for("connected")
    assert connected["line"] == "private"
    assert not [m for m in caller.of_type("prompt") if m["node"] == "consent"]
    flow = await (await client.get("/v1/flows/consent", headers=bearer(admin))).json()
    assert flow["version"] == version
    assert len(flow["versions"]) == 2


async def test_user_management_rules(start_app: AppFactory) -> None:
    client = await start_app()
    admin = await add_user(client, "adm@example.com", "admin")
    owner = await add_user(client, "own@example.com", "owner")
    body = {"email": "o2@example.com", "name": "O2", "role": "owner", "password": "a long password"}
    resp = await client.post("/v1/users", headers=bearer(admin), json=body)
    assert resp.status == 403  # only an Owner grants Owner
    resp = await client.post("/v1/users", headers=bearer(owner), json=body)
    assert resp.status == 201
    o2 = (await resp.json())["id"]
    assert (
        await client.patch(f"/v1/users/{o2}", headers=bearer(admin), json={"name": "x"})
    ).status == 403
    assert (await client.delete(f"/v1/users/{o2}", headers=bearer(admin))).status == 403
    me = await (await client.get("/v1/me", headers=bearer(admin))).json()
    resp = await client.patch(
        f"/v1/users/{me['id']}", headers=bearer(admin), json={"role": "owner"}
    )
    assert resp.status == 403
    resp = await client.patch(
        f"/v1/users/{me['id']}", headers=bearer(admin), json={"role": "agent"}
    )
    assert resp.status == 403  # nobody changes their own role
    resp = await client.post(
        "/v1/users",
        headers=bearer(admin),
        json={**body, "role": "agent", "email": "a@example.com", "is_admin": True},
    )
    assert resp.status == 422  # no mass assignment: unknown fields are refused
    assert (await resp.json())["error"]["field"] == "is_admin"
    resp = await client.post(
        "/v1/users",
        headers=bearer(admin),
        json={**body, "role": "agent", "email": "own@example.com"},
    )
    assert resp.status == 409


async def test_login_is_rate_limited(start_app: AppFactory) -> None:
    client = await start_app()
    await add_user(client, "sam@example.com", "supervisor")
    for _ in range(5):
        resp = await client.post(
            "/v1/auth/login", json={"email": "sam@example.com", "password": "wrong"}
        )
        assert resp.status == 401
    resp = await client.post(
        "/v1/auth/login", json={"email": "sam@example.com", "password": "correct horse battery"}
    )
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 0
    assert (await resp.json())["error"]["code"] == "too_many_attempts"


async def test_teams_and_bots_change_live(
    start_app: AppFactory, new_caller: Callable[..., Caller], config_data: dict[str, Any]
) -> None:
    client = await start_app()
    admin = await add_user(client, "adm@example.com", "admin")
    resp = await client.patch("/v1/teams/desk", headers=bearer(admin), json={"bots": 2})
    assert resp.status == 200
    caller = new_caller(client)
    await caller.dial("+15550102")  # desk had no bots; now it does
    await caller.wait_for("prompt", event="start", node="consent")
    await caller.send({"type": "dtmf", "digits": "2"})
    assert (await caller.wait_for("connected"))["agent"] == "desk bot 1"
    teams = await (await client.get("/v1/teams", headers=bearer(admin))).json()
    desk = next(t for t in teams["items"] if t["id"] == "desk")
    assert desk["bots"] == 2
    assert (await client.delete("/v1/teams/desk", headers=bearer(admin))).status == 409


async def test_live_pause_and_resume_write_silence_and_list_the_pause(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    sup = await add_user(client, "sup@example.com", "supervisor")
    caller = new_caller(client)
    answered = await caller.dial("+15550101")
    await caller.wait_for("connected")
    caller.start_audio(noise_frames(100))
    await asyncio.sleep(0.3)
    url = f"/v1/calls/{answered['call_id']}/recording"
    resp = await client.post(f"{url}/pause", headers=bearer(sup), json={"reason": "card"})
    assert (await resp.json())["recording"] == "paused"
    await caller.wait_for("recording", state="paused")
    await asyncio.sleep(0.4)
    resp = await client.post(f"{url}/resume", headers=bearer(sup))
    assert (await resp.json())["recording"] == "on"
    await asyncio.sleep(0.3)
    hangup = await caller.hangup()
    await caller.closed_wait()
    rec = await (
        await client.get(f"/v1/recordings/{hangup['stats']['recording_id']}", headers=bearer(sup))
    ).json()
    [pause] = rec["pauses"]
    assert pause["reason"] == "card"
    call = await (await client.get(f"/v1/calls/{answered['call_id']}", headers=bearer(sup))).json()
    assert call["pauses"] == {rec["id"]: [pause]}
    assert (call["transport"], call["sip_call_id"], call["media"]) == ("ws", None, None)
    assert any("paused" in line and "(card)" in line for line in call["recording_trace"])
    assert any("draw" in line for line in call["recording_trace"])
    assert 0.3 <= pause["end_s"] - pause["start_s"] <= 0.8
    store = client.app[store_key]
    row = await store.recordings.get(rec["id"])
    audio, rate = read_recording(store, row)
    start, end = int(pause["start_s"] * rate), int(pause["end_s"] * rate)
    assert not np.any(audio[start:end])  # silence while paused
    assert np.any(audio[:start, 0])
    assert np.any(audio[end:, 0])
    resp = await client.post(f"{url}/pause", headers=bearer(sup))
    assert resp.status == 404  # the call is over


async def test_analytics_and_billing_add_up(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    sup = await add_user(client, "sup@example.com", "supervisor")
    owner = await add_user(client, "own@example.com", "owner")
    assert await recorded(client, new_caller) is not None
    caller = new_caller(client)
    await caller.dial("+15550100")
    await caller.wait_for("prompt", event="start", node="consent")
    await caller.send({"type": "dtmf", "digits": "2"})
    await caller.wait_for("connected")
    await caller.hangup()
    await caller.closed_wait()
    summary = await (await client.get("/v1/analytics/summary", headers=bearer(sup))).json()
    assert summary["calls"] == 2
    assert summary["answered"] == 2
    assert summary["recorded"] == 1
    assert summary["consent_asked"] == 2
    assert summary["consent_rate"] == 0.5
    assert summary["average_handle_time_s"] > 0
    assert [t["key"] for t in summary["by_team"]] == ["support"]
    csv_text = await (await client.get("/v1/analytics/export", headers=bearer(sup))).text()
    assert csv_text.splitlines()[1].startswith("all,all,2,2,1,2,1,0.5,")
    future = await (
        await client.get("/v1/analytics/summary?since=2100-01-01", headers=bearer(sup))
    ).json()
    assert future["calls"] == 0
    bad = await client.get("/v1/analytics/summary?since=yesterday", headers=bearer(sup))
    assert bad.status == 422
    bill = await (await client.get("/v1/billing", headers=bearer(owner))).json()
    assert bill["seats"] == 1
    assert bill["recorded_minutes"] > 0
    assert bill["storage_bytes"] > 44
    assert bill["minutes"] >= bill["recorded_minutes"]


async def test_every_route_is_in_the_openapi_document(start_app: AppFactory) -> None:
    client = await start_app()
    doc = await (await client.get("/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    documented = {
        (m.upper(), p) for p, ops in doc["paths"].items() for m in ops if m != "parameters"
    }
    routes = set()
    for route in client.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = str(info.get("path") or info.get("formatter"))
        if (
            route.method in ("HEAD", "*")
            or path in WEBSOCKET_PATHS
            or not (path.startswith("/v1/") or path == "/metrics")
        ):
            continue
        routes.add((route.method, path))
    assert routes == documented


async def test_non_compliant_flows_and_number_settings_are_refused_with_the_path(
    start_app: AppFactory,
) -> None:
    client = await start_app()
    admin = await add_user(client, "adm@example.com", "admin")
    # A timeout that defaults into the recorded line.
    bad = consent_flow()
    bad["nodes"]["consent"]["on_timeout"] = "recorded"
    resp = await client.put("/v1/flows/consent", headers=bearer(admin), json=bad)
    assert resp.status == 422
    err = (await resp.json())["error"]
    assert err["code"] == "non_compliant"
    rules = {p["rule"]: p for p in err["problems"]}
    assert "default_branch" in rules
    assert rules["default_branch"]["nodes"][0] == "notice"
    assert rules["default_branch"]["nodes"][-1] == "recorded"
    check = await (
        await client.post("/v1/flows/check", headers=bearer(admin), json={"id": "consent", **bad})
    ).json()
    assert check["valid"] is False
    # The sales flow has no consent menu: opt_in on that number would record without consent.
    resp = await client.patch(
        "/v1/numbers/+15550101", headers=bearer(admin), json={"consent_mode": "opt_in"}
    )
    assert resp.status == 422
    err = (await resp.json())["error"]
    assert err["code"] == "non_compliant"
    assert any(p["rule"] == "consent" and p["nodes"] == ["notice", "line"] for p in err["problems"])
    number = await (await client.get("/v1/numbers/+15550101", headers=bearer(admin))).json()
    assert number["consent_mode"] == "notice"  # unchanged
    # A dry run gives the same verdict and never saves, compliant or not.
    resp = await client.patch(
        "/v1/numbers/+15550101?dry_run=true", headers=bearer(admin), json={"consent_mode": "opt_in"}
    )
    assert resp.status == 422
    resp = await client.patch(
        "/v1/numbers/+15550101?dry_run=true", headers=bearer(admin), json={"record_percent": 50}
    )
    assert resp.status == 200
    assert (await resp.json())["saved"] is False
    number = await (await client.get("/v1/numbers/+15550101", headers=bearer(admin))).json()
    assert number["record_percent"] == 100


async def test_team_patch_validation_names_the_field(start_app: AppFactory) -> None:
    client = await start_app()
    admin = await add_user(client, "adm@example.com", "admin")
    for body, field in (({"bots": -1}, "bots"), ({"bots": "2"}, "bots"), ({"x": 1}, "x")):
        resp = await client.patch("/v1/teams/desk", headers=bearer(admin), json=body)
        assert resp.status == 422
        assert (await resp.json())["error"]["field"] == field
