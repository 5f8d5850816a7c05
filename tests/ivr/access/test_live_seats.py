"""A signed-in seat lives no longer than the session it signed in with.

Logout, deleting the user, erasing the agent, a role or password change and
the token's expiry end the person's live seats at once: the seat leaves the
switchboard, an offered call moves to the next seat, a connected call ends
with reason ``agent``, and the socket gets ``unauthorized`` and closes 1008.
A change of teams or name (or a deleted team) applies to the live seats at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from ivr.access.auth import token_hash
from ivr.server.keys import store_key
from tests.agent_helpers import signed_in_agent
from tests.conftest import AppFactory, Caller, add_user, consent_flow, noise_frames, read_recording

Client = TestClient[web.Request, web.Application]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def user_id(client: Client, token: str) -> str:
    me = await (await client.get("/v1/me", headers=bearer(token))).json()
    return str(me["id"])


async def ringing_desk_call(
    client: Client, new_caller: Callable[..., Caller], number: str = "+15550102", digit: str = "1"
) -> Caller:
    """A caller on a desk number who chose a line and now waits for an agent."""
    caller = new_caller(client)
    await caller.dial(number)
    await caller.wait_for("prompt", event="start", node="consent")
    await caller.send({"type": "dtmf", "digits": digit})
    await caller.wait_for("ringing")
    return caller


async def people_signed_in(client: Client, token: str, team: str = "desk") -> int:
    teams = await (await client.get("/v1/teams", headers=bearer(token))).json()
    [row] = [t for t in teams["items"] if t["id"] == team]
    return int(row["people_signed_in"])


async def assert_ended(agent: Caller, *, words: tuple[str, ...] = ("revoked", "ended")) -> None:
    """The seat got ``unauthorized`` naming a revoked or ended session, then close 1008."""
    err = await agent.wait_for("error", code="unauthorized")
    assert any(w in err["message"] for w in words), err
    await agent.closed_wait()
    assert agent.close_code == 1008


async def test_logout_ends_the_seat_and_its_offer_moves_to_the_next_seat(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    admin = await add_user(client, "adm@example.com", "admin")
    first_token = await add_user(client, "first@example.com", "agent", ("desk",))
    first = await signed_in_agent(client, new_caller, first_token)
    second = await signed_in_agent(
        client, new_caller, await add_user(client, "second@example.com", "agent", ("desk",))
    )
    caller = await ringing_desk_call(client, new_caller)
    offer = await first.wait_for("offer")  # the longest idle seat first
    assert offer["from"] == "+15557654321"

    resp = await client.post("/v1/auth/logout", headers=bearer(first_token))
    assert resp.status == 204
    await assert_ended(first)
    # The offer moved on at once: the next seat has it long before the offer timeout.
    moved = await second.wait_for("offer", timeout=2.0)
    assert moved["call_id"] == offer["call_id"]
    assert await people_signed_in(client, admin) == 1
    await second.send({"type": "answer", "call_id": moved["call_id"]})
    assert (await caller.wait_for("connected"))["agent"] == "Second"
    assert all(m["type"] != "offer" for m in first.messages[first.messages.index(offer) + 1 :])


async def test_a_logout_of_another_token_leaves_the_seat_alone(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    seat_token = await add_user(client, "ana@example.com", "agent", ("desk",))
    agent = await signed_in_agent(client, new_caller, seat_token)
    resp = await client.post(
        "/v1/auth/login", json={"email": "ana@example.com", "password": "correct horse battery"}
    )
    other_device = (await resp.json())["token"]
    assert (await client.post("/v1/auth/logout", headers=bearer(other_device))).status == 204
    await ringing_desk_call(client, new_caller)
    assert (await agent.wait_for("offer"))["from"] == "+15557654321"
    assert not agent.of_type("error")


async def test_deleting_the_user_ends_their_seat(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    admin = await add_user(client, "adm@example.com", "admin")
    token = await add_user(client, "ana@example.com", "agent", ("desk",))
    agent = await signed_in_agent(client, new_caller, token)
    assert await people_signed_in(client, admin) == 1
    resp = await client.delete(f"/v1/users/{await user_id(client, token)}", headers=bearer(admin))
    assert resp.status == 204
    await assert_ended(agent)
    assert await people_signed_in(client, admin) == 0
    await ringing_desk_call(client, new_caller)
    await asyncio.sleep(0.3)
    assert not agent.of_type("offer")


@pytest.mark.parametrize(
    ("actor_role", "new_role"), [("admin", "supervisor"), ("admin", "agent"), ("owner", "owner")]
)
async def test_a_role_change_ends_the_seat(
    start_app: AppFactory, new_caller: Callable[..., Caller], actor_role: str, new_role: str
) -> None:
    client = await start_app()
    actor = await add_user(client, "boss@example.com", actor_role)
    token = await add_user(client, "ana@example.com", "agent", ("desk",))
    agent = await signed_in_agent(client, new_caller, token)
    caller = await ringing_desk_call(client, new_caller)
    await agent.wait_for("offer")
    resp = await client.patch(
        f"/v1/users/{await user_id(client, token)}",
        headers=bearer(actor),
        json={"role": new_role},  # sending the current role ("agent") still signs out
    )
    assert resp.status == 200, await resp.text()
    await assert_ended(agent)
    assert not caller.of_type("connected")
    assert await people_signed_in(client, actor) == 0


async def test_a_password_change_ends_the_seat_and_its_connected_call(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    admin = await add_user(client, "adm@example.com", "admin")
    token = await add_user(client, "ana@example.com", "agent", ("desk",))
    agent = await signed_in_agent(client, new_caller, token)
    caller = await ringing_desk_call(client, new_caller, digit="2")  # not recorded
    offer = await agent.wait_for("offer")
    await agent.send({"type": "answer", "call_id": offer["call_id"]})
    await caller.wait_for("connected")
    resp = await client.patch(
        f"/v1/users/{await user_id(client, token)}",
        headers=bearer(admin),
        json={"password": "a brand new password"},
    )
    assert resp.status == 200
    assert (await caller.wait_for("hangup"))["reason"] == "agent"
    await assert_ended(agent)
    assert (await agent.wait_for("hangup"))["reason"] == "agent"
    resp = await client.get("/v1/me", headers=bearer(token))
    assert resp.status == 401


def two_desks(config_data: dict[str, Any]) -> dict[str, Any]:
    """A second team without bots, ``desk2``, rung by number ``+15550103``."""
    config_data["teams"]["desk2"] = {"bots": 0}
    config_data["flows"]["desk2"] = consent_flow("desk2")
    config_data["numbers"]["+15550103"] = {
        **config_data["numbers"]["+15550102"],
        "name": "Desk 2",
        "flow": "desk2",
    }
    return config_data


async def test_a_team_change_moves_the_live_seat_to_the_new_team(
    start_app: AppFactory, new_caller: Callable[..., Caller], config_data: dict[str, Any]
) -> None:
    client = await start_app(two_desks(config_data))
    admin = await add_user(client, "adm@example.com", "admin")
    token = await add_user(client, "ana@example.com", "agent", ("desk",))
    agent = await signed_in_agent(client, new_caller, token)
    resp = await client.patch(
        f"/v1/users/{await user_id(client, token)}",
        headers=bearer(admin),
        json={"teams": ["desk2"], "name": "Ana B"},
    )
    assert resp.status == 200
    # An old-team call rings first; with the seat still in desk, it would be offered first.
    old = await ringing_desk_call(client, new_caller, "+15550102")
    new = await ringing_desk_call(client, new_caller, "+15550103")
    offer = await agent.wait_for("offer")
    new_id = new.of_type("answered")[0]["call_id"]
    assert offer["call_id"] == new_id
    await agent.send({"type": "answer", "call_id": new_id})
    assert (await new.wait_for("connected"))["agent"] == "Ana B"
    assert not old.of_type("connected")
    assert [o["call_id"] for o in agent.of_type("offer")] == [new_id]
    assert not agent.of_type("error")
    assert await people_signed_in(client, admin, "desk") == 0
    assert await people_signed_in(client, admin, "desk2") == 1


async def test_a_team_change_withdraws_an_offer_of_a_team_the_seat_left(
    start_app: AppFactory, new_caller: Callable[..., Caller], config_data: dict[str, Any]
) -> None:
    client = await start_app(two_desks(config_data))
    admin = await add_user(client, "adm@example.com", "admin")
    leaving = await add_user(client, "ana@example.com", "agent", ("desk",))
    agent = await signed_in_agent(client, new_caller, leaving)
    other = await signed_in_agent(
        client, new_caller, await add_user(client, "bo@example.com", "agent", ("desk",))
    )
    await ringing_desk_call(client, new_caller)
    offer = await agent.wait_for("offer")
    resp = await client.patch(
        f"/v1/users/{await user_id(client, leaving)}",
        headers=bearer(admin),
        json={"teams": ["desk2"]},
    )
    assert resp.status == 200
    assert (await other.wait_for("offer", timeout=2.0))["call_id"] == offer["call_id"]
    await agent.send({"type": "answer", "call_id": offer["call_id"]})
    err = await agent.wait_for("error", code="bad_field")
    assert "is offered to you" in err["message"]
    assert not agent.closed


async def test_deleting_the_agent_ends_a_connected_recorded_call_with_a_complete_recording(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    admin = await add_user(client, "adm@example.com", "admin")
    token = await add_user(client, "ana@example.com", "agent", ("desk",))
    agent = await signed_in_agent(client, new_caller, token)
    caller = await ringing_desk_call(client, new_caller, digit="1")
    offer = await agent.wait_for("offer")
    assert offer["recording"] is True
    await agent.send({"type": "answer", "call_id": offer["call_id"]})
    await caller.wait_for("recording", state="on")
    caller.start_audio(noise_frames(40, seed=21))
    agent.start_audio(noise_frames(40, seed=22))
    await asyncio.sleep(0.6)
    resp = await client.delete(f"/v1/users/{await user_id(client, token)}", headers=bearer(admin))
    assert resp.status == 204
    hangup = await caller.wait_for("hangup")
    assert hangup["reason"] == "agent"
    await assert_ended(agent)
    await caller.closed_wait()

    rec_id = hangup["stats"]["recording_id"]
    store = client.app[store_key]
    rec = await store.recordings.get(rec_id)
    assert rec.status == "complete"
    with store.recording_audio(rec.path) as plain:
        assert hashlib.sha256(plain.read_at(0, plain.size)).hexdigest() == rec.sha256
    audio, rate = read_recording(store, rec)
    assert rate == 8000
    assert audio.shape[1] == 2
    assert len(audio) / rate == pytest.approx(rec.duration_s)
    assert (rec.duration_s or 0) >= 0.3
    assert np.count_nonzero(audio[:, 0]) > 0  # the caller's noise
    assert np.count_nonzero(audio[:, 1]) > 0  # the agent's noise
    call = await store.calls.get(offer["call_id"])
    assert call.end_reason == "agent"


async def test_erasing_the_agent_ends_their_seat(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    admin = await add_user(client, "adm@example.com", "admin")
    token = await add_user(client, "ana@example.com", "agent", ("desk",))
    agent = await signed_in_agent(client, new_caller, token)
    resp = await client.post(
        "/v1/privacy/erasures",
        headers=bearer(admin),
        json={"agent_id": await user_id(client, token)},
    )
    assert resp.status == 201
    await assert_ended(agent)
    assert await people_signed_in(client, admin) == 0


async def test_an_expired_token_ends_the_seat_when_an_offer_would_go_out(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    admin = await add_user(client, "adm@example.com", "admin")
    await add_user(client, "ana@example.com", "agent", ("desk",))
    store = client.app[store_key]
    found = await store.users.credentials("ana@example.com")
    assert found is not None
    short = secrets.token_urlsafe(32)
    expires = (datetime.now(UTC) + timedelta(seconds=1.0)).isoformat(timespec="milliseconds")
    await store.users.add_token(token_hash(short), found.user.id, expires.replace("+00:00", "Z"))
    agent = await signed_in_agent(client, new_caller, short)
    await asyncio.sleep(1.2)
    caller = await ringing_desk_call(client, new_caller)
    await assert_ended(agent, words=("expired",))
    assert not agent.of_type("offer")
    assert await people_signed_in(client, admin) == 0
    assert not caller.of_type("connected")


async def test_a_deleted_team_leaves_the_live_seats(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    admin = await add_user(client, "adm@example.com", "admin")
    resp = await client.post("/v1/teams", headers=bearer(admin), json={"id": "extra"})
    assert resp.status == 201
    token = await add_user(client, "ana@example.com", "agent", ("desk", "extra"))
    agent = await signed_in_agent(client, new_caller, token)
    assert await people_signed_in(client, admin, "extra") == 1
    assert (await client.delete("/v1/teams/extra", headers=bearer(admin))).status == 204
    resp = await client.post("/v1/teams", headers=bearer(admin), json={"id": "extra"})
    assert resp.status == 201
    # The store dropped the team from the user; the live seat dropped it too.
    assert await people_signed_in(client, admin, "extra") == 0
    assert await people_signed_in(client, admin, "desk") == 1
    assert not agent.closed
