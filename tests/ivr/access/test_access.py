"""docs/access.md, every cell: real app, real calls and recordings, every role."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from ivr.access.audit import verify
from ivr.server.keys import audit_key, store_key
from tests.agent_helpers import signed_in_agent
from tests.conftest import AppFactory, Caller, add_user, consent_flow, noise_frames
from tests.ivr.access.access_matrix import MATRIX, OBJECT_PATHS, ROLES


@dataclass
class World:
    client: TestClient[web.Request, web.Application]
    tokens: dict[str, str]
    ids: dict[str, dict[str, str]] = field(default_factory=dict)
    live: Caller | None = None


async def _desk_call(
    client: Any, new_caller: Callable[..., Caller], agent: Caller, frm: str, hang_up: bool = True
) -> tuple[Caller, dict[str, Any]]:
    caller = new_caller(client)
    answered = await caller.dial("+15550102", frm=frm)
    await caller.wait_for("prompt", event="start", node="consent")
    await caller.send({"type": "dtmf", "digits": "1"})
    await agent.wait_for("offer", call_id=answered["call_id"])
    await agent.send({"type": "answer", "call_id": answered["call_id"]})
    await caller.wait_for("connected")
    caller.start_audio(noise_frames(200))
    await asyncio.sleep(0.3)
    if hang_up:
        hangup = await caller.hangup()
        await caller.closed_wait()
        return caller, hangup
    return caller, answered


async def _bot_recording(client: Any, new_caller: Callable[..., Caller], frm: str) -> str:
    caller = new_caller(client)
    await caller.dial("+15550101", frm=frm)
    await caller.wait_for("connected")
    caller.start_audio(noise_frames(10))
    await asyncio.sleep(0.25)
    hangup = await caller.hangup()
    await caller.closed_wait()
    rec_id: str = hangup["stats"]["recording_id"]
    return rec_id


@pytest.fixture
async def world(start_app: AppFactory, new_caller: Callable[..., Caller]) -> World:
    client = await start_app()
    tokens = {
        "agent": await add_user(client, "ana@example.com", "agent", ("desk",)),
        "bob": await add_user(client, "bob@example.com", "agent", ("desk",)),
        "supervisor": await add_user(client, "sup@example.com", "supervisor"),
        "admin": await add_user(client, "adm@example.com", "admin"),
        "owner": await add_user(client, "own@example.com", "owner"),
    }
    w = World(client, tokens)
    ana = await signed_in_agent(client, new_caller, tokens["agent"])
    _, h1 = await _desk_call(client, new_caller, ana, "+15550000001")
    await ana.send({"type": "not_ready"})
    bob = await signed_in_agent(client, new_caller, tokens["bob"])
    _, h2 = await _desk_call(client, new_caller, bob, "+15550000002")
    await bob.send({"type": "not_ready"})
    await ana.send({"type": "ready"})
    w.live, live = await _desk_call(client, new_caller, ana, "+15550000003", hang_up=False)
    store = client.app[store_key]
    own_rec = await store.recordings.get(h1["stats"]["recording_id"])
    other_rec = await store.recordings.get(h2["stats"]["recording_id"])
    spare = {
        "supervisor": await _bot_recording(client, new_caller, "+15550000004"),
        "admin": await _bot_recording(client, new_caller, "+15550000005"),
    }
    adm = {"Authorization": f"Bearer {tokens['admin']}"}
    resp = await client.post("/v1/teams", json={"id": "spare"}, headers=adm)
    assert resp.status == 201, await resp.text()
    for role in ROLES:
        resp = await client.post(
            "/v1/users",
            headers=adm,
            json={
                "email": f"spare-{role}@example.com",
                "name": "Spare",
                "role": "agent",
                "password": "a long password",
            },
        )
        assert resp.status == 201, await resp.text()
        erasable = await client.post(
            "/v1/users",
            headers=adm,
            json={
                "email": f"erasable-{role}@example.com",
                "name": "Erasable",
                "role": "agent",
                "password": "a long password",
            },
        )
        me = await (
            await client.get("/v1/me", headers={"Authorization": f"Bearer {tokens[role]}"})
        ).json()
        w.ids[role] = {
            "me": me["id"],
            "spare_agent": (await erasable.json())["id"],
            "call": own_rec.call_id,
            "rec": own_rec.id,
            "live_call": live["call_id"],
            "spare_user": (await resp.json())["id"],
            "spare_rec": spare.get(role, own_rec.id),
        }
    w.ids["other"] = {"call": other_rec.call_id, "rec": other_rec.id}
    return w


def _fill(path: str, ids: dict[str, str]) -> str:
    if "/recording/" in path:
        path = path.replace("{call}", ids["live_call"])
    for key, value in ids.items():
        path = path.replace("{" + key + "}", value)
    return path


def _body(body: Any, role: str, ids: dict[str, str] | None = None) -> Any:
    if body == "{flow}":
        return consent_flow()
    if not isinstance(body, dict):
        return body
    text = json.dumps(body).replace("{role}", role)
    for key, value in (ids or {}).items():
        text = text.replace("{" + key + "}", value)
    return json.loads(text)


def _allowed(status: int, payload: Any) -> bool:
    if 200 <= status < 300:
        return True
    code = payload.get("error", {}).get("code") if isinstance(payload, dict) else None
    return status == 404 and code == "no_transcript"


async def _call(
    client: Any, method: str, path: str, token: str | None, body: Any
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = await client.request(
        method, path, headers=headers, json=body if body is not None else None
    )
    try:
        payload = await resp.json(content_type=None)
    except (json.JSONDecodeError, UnicodeDecodeError):
        payload = None
    return resp.status, payload


async def test_every_cell_of_the_matrix(world: World) -> None:
    failures = []
    for method, path, body, expect in MATRIX:
        for role in ROLES:
            url = _fill(path, world.ids[role])
            status, payload = await _call(
                world.client, method, url, world.tokens[role], _body(body, role, world.ids[role])
            )
            want = expect[role]
            ok = (
                (status == 403 and payload["error"]["code"] == "forbidden")
                if want == "403"
                else _allowed(status, payload)
            )
            if not ok:
                failures.append(f"{role} {method} {url}: want {want}, got {status} {payload}")
    assert not failures, "\n".join(failures)


async def test_anonymous_and_expired_tokens_get_401_everywhere(world: World) -> None:
    store = world.client.app[store_key]
    await store.db.execute(
        "UPDATE tokens SET expires_at = '2000-01-01T00:00:00.000Z' "
        "WHERE user_id = (SELECT id FROM users WHERE email = ?)",
        ("sup@example.com",),
    )
    await store.db.commit()
    for method, path, body, _ in MATRIX:
        url = _fill(path, world.ids["admin"])
        for token in (None, world.tokens["supervisor"], "forged-token"):
            status, payload = await _call(world.client, method, url, token, _body(body, "x"))
            assert status == 401, (method, url, token, status)
            assert payload["error"]["code"] == "unauthorized"


async def test_agents_get_404_for_another_agents_objects_and_it_is_audited(world: World) -> None:
    audit = world.client.app[audit_key]
    before = len(await audit.entries(limit=10000))
    others = {**world.ids["agent"], **world.ids["other"]}
    for method, path, body in OBJECT_PATHS:
        if "/recording/" in path:
            continue  # the live call is the agent's own; tried below with bob's token
        url = _fill(path, others)
        status, payload = await _call(world.client, method, url, world.tokens["agent"], body)
        assert status == 404, (url, status, payload)
        assert payload["error"]["code"] == "not_found"
        # ... exactly as an id that does not exist.
        missing = url.replace(others["call"], "c_0000").replace(others["rec"], "r_0000")
        status2, payload2 = await _call(world.client, method, missing, world.tokens["agent"], body)
        assert status2 == 404
        assert payload2["error"]["code"] == "not_found"
    for action in ("pause", "resume"):  # bob may not touch ana's live call
        url = f"/v1/calls/{world.ids['agent']['live_call']}/recording/{action}"
        status, _ = await _call(world.client, "POST", url, world.tokens["bob"], None)
        assert status == 404
    entries = (await audit.entries(limit=10000))[before:]
    refusals = [e for e in entries if e.outcome == "refused"]
    live_paths = sum("/recording/" in p for _, p, _ in OBJECT_PATHS)
    assert len(refusals) == 2 * (len(OBJECT_PATHS) - live_paths) + 2
    assert all(e.detail == {"why": "object"} for e in refusals)


async def test_lists_hold_only_the_agents_own_calls(world: World) -> None:
    status, calls = await _call(world.client, "GET", "/v1/calls", world.tokens["agent"], None)
    assert status == 200
    found = await world.client.app[store_key].users.credentials("ana@example.com")
    assert found is not None
    assert {c["agent_id"] for c in calls["items"]} == {found.user.id}
    status, recs = await _call(world.client, "GET", "/v1/recordings", world.tokens["bob"], None)
    assert [r["id"] for r in recs["items"]] == [world.ids["other"]["rec"]]
    status, recs = await _call(
        world.client,
        "GET",
        f"/v1/recordings?agent_id={calls['items'][0]['agent_id']}",
        world.tokens["bob"],
        None,
    )
    assert recs["items"] == []


async def test_the_audit_chain_verifies_and_breaks_when_a_row_is_edited(world: World) -> None:
    store = world.client.app[store_key]
    verdict = await verify(store)
    assert verdict.ok
    assert verdict.entries >= 8  # logins, user and team changes
    # Append-only: the database refuses edits ...
    with pytest.raises(Exception, match="append-only"):
        await store.db.execute("UPDATE audit SET outcome = 'ok' WHERE seq = 3")
    # ... and someone who drops the guard to edit a row is caught by the chain.
    await store.db.execute("DROP TRIGGER audit_append_only_update")
    await store.db.execute("UPDATE audit SET actor_role = 'owner' WHERE seq = 3")
    await store.db.commit()
    verdict = await verify(store)
    assert not verdict.ok
    assert verdict.first_bad_seq == 3


async def test_no_tokens_passwords_or_full_numbers_in_the_audit_log(world: World) -> None:
    store = world.client.app[store_key]
    async with store.db.execute("SELECT * FROM audit") as cur:
        text = json.dumps([dict(r) for r in await cur.fetchall()])
    for secret in (
        *world.tokens.values(),
        "correct horse battery",
        "a long password",
        "+15550000001",
        "+15550000002",
    ):
        assert secret not in text
