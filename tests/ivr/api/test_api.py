"""The REST API the core serves, against the real app and store."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from typing import Any

import pytest
import soundfile as sf

from ivr.errors import NotFound
from ivr.server.keys import store_key
from tests.agent_helpers import signed_in_agent
from tests.conftest import AppFactory, Caller, add_user, noise_frames


async def test_login_me_logout(start_app: AppFactory) -> None:
    client = await start_app()
    token = await add_user(client, "sam@example.com", "supervisor")
    auth = {"Authorization": f"Bearer {token}"}
    me = await (await client.get("/v1/me", headers=auth)).json()
    assert me["email"] == "sam@example.com"
    assert me["role"] == "supervisor"
    assert (await client.post("/v1/auth/logout", headers=auth)).status == 204
    resp = await client.get("/v1/me", headers=auth)
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    "body",
    [
        {"email": "sam@example.com", "password": "wrong"},
        {"email": "nobody@example.com", "password": "x"},
    ],
)
async def test_bad_login_is_401(start_app: AppFactory, body: dict[str, str]) -> None:
    client = await start_app()
    await add_user(client, "sam@example.com", "supervisor")
    resp = await client.post("/v1/auth/login", json=body)
    assert resp.status == 401
    assert (await resp.json())["error"]["message"] == "wrong e-mail or password"


@pytest.mark.parametrize(("raw", "status"), [(b"{nope", 400), (b"[]", 422), (b'{"email": 1}', 422)])
async def test_malformed_login_bodies(start_app: AppFactory, raw: bytes, status: int) -> None:
    client = await start_app()
    resp = await client.post(
        "/v1/auth/login", data=raw, headers={"Content-Type": "application/json"}
    )
    assert resp.status == status
    assert {"code", "message"} <= set((await resp.json())["error"])


async def test_oversize_body_is_413(start_app: AppFactory) -> None:
    client = await start_app()
    resp = await client.post("/v1/auth/login", data=b"x" * 200_000)
    assert resp.status == 413
    assert "error" in await resp.json()


async def test_unknown_route_and_wrong_method_are_json(start_app: AppFactory) -> None:
    client = await start_app()
    resp = await client.get("/v1/nothing/here")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
    resp = await client.delete("/v1/me")
    assert resp.status == 405
    assert (await resp.json())["error"]["code"] == "method_not_allowed"


async def _recorded_call(
    client: Any, new_caller: Callable[..., Caller], agent: Caller, frm: str
) -> dict[str, Any]:
    caller = new_caller(client)
    await caller.dial("+15550102", frm=frm)
    await caller.wait_for("prompt", event="start", node="consent")
    await caller.send({"type": "dtmf", "digits": "1"})
    offer = await agent.wait_for("offer", call_id=caller.of_type("answered")[0]["call_id"])
    await agent.send({"type": "answer", "call_id": offer["call_id"]})
    await caller.wait_for("connected")
    caller.start_audio(noise_frames(20))
    await asyncio.sleep(0.5)
    hangup = await caller.hangup()
    await caller.closed_wait()
    await agent.wait_for("hangup", call_id=offer["call_id"])
    return hangup


async def test_roles_see_exactly_their_calls_and_recordings(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    ana = await add_user(client, "ana@example.com", "agent", ("desk",))
    bob = await add_user(client, "bob@example.com", "agent", ("desk",))
    sup = await add_user(client, "sup@example.com", "supervisor")
    owner = await add_user(client, "own@example.com", "owner")
    ana_ws = await signed_in_agent(client, new_caller, ana)
    h1 = await _recorded_call(client, new_caller, ana_ws, "+15551110001")
    await ana_ws.send({"type": "not_ready"})
    bob_ws = await signed_in_agent(client, new_caller, bob)
    h2 = await _recorded_call(client, new_caller, bob_ws, "+15551110002")
    rec_ana, rec_bob = h1["stats"]["recording_id"], h2["stats"]["recording_id"]

    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    # Supervisor: everything.
    body = await (await client.get("/v1/recordings", headers=auth(sup))).json()
    assert {r["id"] for r in body["items"]} == {rec_ana, rec_bob}
    item = next(r for r in body["items"] if r["id"] == rec_ana)
    for key in (
        "id",
        "call_id",
        "agent_id",
        "contact",
        "number",
        "started_at",
        "duration_s",
        "format",
        "sha256",
        "consent",
        "transcript_available",
    ):
        assert key in item
    assert item["contact"] == "+15551110001"
    assert item["consent"]["decision"] == "granted"
    assert item["consent"]["digit"] == "1"
    assert item["consent"]["evidence"]["menu"]["sha256"]
    # Agent: only their own; another agent's ids are 404, like missing ones.
    body = await (await client.get("/v1/recordings", headers=auth(ana))).json()
    assert [r["id"] for r in body["items"]] == [rec_ana]
    for path in (
        f"/v1/recordings/{rec_bob}",
        f"/v1/recordings/{rec_bob}/audio",
        f"/v1/calls/{body['items'][0]['call_id'].replace('c_', 'c_x')}",
    ):
        resp = await client.get(path, headers=auth(ana))
        assert resp.status == 404, path
    bob_call = (await (await client.get(f"/v1/recordings/{rec_bob}", headers=auth(sup))).json())[
        "call_id"
    ]
    assert (await client.get(f"/v1/calls/{bob_call}", headers=auth(ana))).status == 404
    calls = await (await client.get("/v1/calls", headers=auth(ana))).json()
    assert len(calls["items"]) == 1
    # Owner: no call data at all.
    for path in (
        "/v1/calls",
        f"/v1/calls/{bob_call}",
        "/v1/recordings",
        f"/v1/recordings/{rec_bob}",
        f"/v1/recordings/{rec_bob}/audio",
    ):
        resp = await client.get(path, headers=auth(owner))
        assert resp.status == 403, path
    # No token: 401.
    assert (await client.get("/v1/recordings")).status == 401

    # A call's decision trace and evidence.
    call = await (await client.get(f"/v1/calls/{bob_call}", headers=auth(sup))).json()
    decision = call["recording_decision"]
    assert decision["record"] is True
    assert decision["consent"] == "granted"
    assert decision["in_sample"] is True
    assert call["consents"][0]["evidence"]["notices"][0]["kinds"] == ["recording", "ai"]
    assert call["recordings"] == [rec_bob]

    # Audio: the WAV, whole and by Range.
    resp = await client.get(f"/v1/recordings/{rec_ana}/audio", headers=auth(ana))
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "audio/wav"
    whole = await resp.read()
    audio, rate = sf.read(io.BytesIO(whole), dtype="int16")
    assert rate == 8000
    assert audio.shape[1] == 2
    resp = await client.get(
        f"/v1/recordings/{rec_ana}/audio", headers={**auth(ana), "Range": "bytes=0-43"}
    )
    assert resp.status == 206
    assert await resp.read() == whole[:44]

    # Paging: one at a time, then the end.
    page1 = await (await client.get("/v1/recordings?limit=1", headers=auth(sup))).json()
    assert len(page1["items"]) == 1
    assert page1["next"]
    page2 = await (
        await client.get(f"/v1/recordings?limit=1&cursor={page1['next']}", headers=auth(sup))
    ).json()
    assert page2["next"] is None
    assert {page1["items"][0]["id"], page2["items"][0]["id"]} == {rec_ana, rec_bob}
    bad = await client.get("/v1/recordings?cursor=%%%", headers=auth(sup))
    assert bad.status == 422
    # Filters.
    only = await (
        await client.get("/v1/recordings?contact=%2B15551110002", headers=auth(sup))
    ).json()
    assert [r["id"] for r in only["items"]] == [rec_bob]


@pytest.mark.parametrize("relative", ["../ivr.sqlite3", "/etc/passwd", "2026/../../x.wav", ""])
async def test_recording_paths_never_leave_the_recordings_folder(
    start_app: AppFactory, relative: str
) -> None:
    client = await start_app()
    with pytest.raises(NotFound):
        client.app[store_key].recording_path(relative)
