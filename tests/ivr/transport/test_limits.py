"""Hostile callers and a stalling server: one call cannot damage the others.

Each test runs an honest recorded call beside the trouble and then compares
its recording frame by frame with what it sent (``tests.timeline``). The
honest caller runs in a thread of its own (``tests.threaded_caller``), so
that it keeps real time whatever the server's loop goes through.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient

from ivr.call import session as session_module
from ivr.server.keys import store_key
from ivr.store import RecordingRow
from media.frame import Pcm
from tests.conftest import AppFactory, Caller, add_user, noise_frames
from tests.threaded_caller import ThreadedCaller
from tests.timeline import assert_on_timeline, caller_channel

Client = TestClient[web.Request, web.Application]


def ws_url(client: Client, path: str = "/v1/call") -> str:
    return str(client.make_url(path)).replace("http://", "ws://", 1)


async def start_recorded_call(client: Client, frames: list[Pcm]) -> ThreadedCaller:
    """An honest caller on the consent line who presses 1 and talks ``frames`` in real time."""
    caller = ThreadedCaller(ws_url(client), frames)
    caller.start()
    assert await asyncio.to_thread(caller.talking.wait, 15), caller.messages
    return caller


async def finish_and_check(client: Client, caller: ThreadedCaller, sent: list[Pcm]) -> RecordingRow:
    """Wait for the honest call to end and check its recording against ``sent``."""
    hangup = await asyncio.to_thread(caller.result)
    assert caller.close_code == 1000
    store = client.app[store_key]
    rec = await store.recordings.get(hangup["stats"]["recording_id"])
    assert rec.status == "complete"
    found = assert_on_timeline(caller_channel(store, rec), sent)
    stats = hangup["stats"]
    # What reached the server in time is in the file (the jitter buffer's last
    # few frames at the hangup excepted); nothing was made up.
    playable = stats["frames_received"] - stats["frames_dropped"]
    assert playable - 12 <= found <= playable
    return rec


async def test_a_dtmf_flood_is_cut_off_and_the_call_beside_it_stays_exact(
    start_app: AppFactory,
) -> None:
    client = await start_app()
    sent = noise_frames(150)
    honest = await start_recorded_call(client, sent)
    # One unauthenticated caller sends valid digits as fast as the socket takes them.
    ws = await client.ws_connect("/v1/call")
    await ws.send_json(
        {
            "type": "dial",
            "to": "+15550199",
            "from": "+15557654321",
            "codec": "pcm_s16le",
            "rate": 8000,
        }
    )
    answered = None
    while answered is None:
        msg = await ws.receive()
        if msg.type == WSMsgType.TEXT and json.loads(msg.data)["type"] == "answered":
            answered = json.loads(msg.data)
    flood = json.dumps({"type": "dtmf", "digits": "1"})
    sent_count = 0
    deadline = time.monotonic() + 3
    while not ws.closed and time.monotonic() < deadline:
        try:
            await ws.send_str(flood)
        except ConnectionError:
            break
        sent_count += 1
        if sent_count % 100 == 0:
            await asyncio.sleep(0)
    errors = []
    async for msg in ws:
        if msg.type == WSMsgType.TEXT and json.loads(msg.data)["type"] == "error":
            errors.append(json.loads(msg.data))
    assert ws.close_code == 1008
    assert [e["code"] for e in errors] == ["rate_limited"]
    assert "messages a second" in errors[0]["message"]
    await asyncio.sleep(2.0)
    await finish_and_check(client, honest, sent)
    store = client.app[store_key]
    events = await store.calls.events(answered["call_id"])
    # The flood left a bounded trace: the burst the limit allows, not everything sent.
    assert len([e for e in events if e.type == "dtmf"]) <= 50
    assert sent_count > 50


async def test_digits_past_the_rate_are_cut_off(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    caller = new_caller(client)
    await caller.dial("+15550199")
    await caller.wait_for("connected", timeout=5)
    # 20 messages of 32 digits at once: within the message rate, over the digit rate.
    for _ in range(20):
        await caller.send({"type": "dtmf", "digits": "1" * 32})
    await caller.closed_wait()
    assert caller.close_code == 1008
    error = caller.wait_for("error", code="rate_limited")
    assert "digits a second" in (await error)["message"]
    assert caller.of_type("hangup")[0]["reason"] == "error"


async def test_a_call_with_too_many_events_is_closed(
    start_app: AppFactory, new_caller: Callable[..., Caller], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session_module, "MAX_EVENTS_PER_CALL", 40)
    client = await start_app()
    caller = new_caller(client)
    answered = await caller.dial("+15550199")
    await caller.wait_for("connected", timeout=5)
    for _ in range(45):  # slow enough for the rate limits
        if caller.closed:
            break
        await caller.send({"type": "dtmf", "digits": "5"})
        await asyncio.sleep(0.03)
    await caller.closed_wait()
    assert caller.close_code == 1008
    error = await caller.wait_for("error", code="too_many_events")
    assert "more than 40 events" in error["message"]
    events = await client.app[store_key].calls.events(answered["call_id"])
    assert 40 <= len(events) <= 45  # the cap, plus the end of the call


async def test_a_calls_events_are_served_a_page_at_a_time(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    token = await add_user(client, "sam@example.com", "supervisor")
    caller = new_caller(client)
    answered = await caller.dial("+15550199")
    await caller.wait_for("connected", timeout=5)
    await caller.hangup()
    await caller.closed_wait()
    call_id = answered["call_id"]
    store = client.app[store_key]
    own = len(await store.calls.events(call_id))
    await store.add_events(
        [(call_id, "2026-01-01T00:00:00.000Z", "dtmf", json.dumps({"n": i})) for i in range(1200)]
    )
    auth = {"Authorization": f"Bearer {token}"}
    resp = await client.get(f"/v1/calls/{call_id}", headers=auth)
    body = await resp.json()
    assert resp.status == 200
    assert len(body["events"]) == 500
    seen = list(body["events"])
    nxt = body["events_next"]
    while nxt is not None:
        resp = await client.get(f"/v1/calls/{call_id}/events?after={nxt}", headers=auth)
        page = await resp.json()
        assert resp.status == 200
        assert len(page["items"]) <= 500
        seen += page["items"]
        nxt = page["next"]
    assert len(seen) == own + 1200
    assert [e["n"] for e in seen if "n" in e] == list(range(1200))
    resp = await client.get(f"/v1/calls/{call_id}/events?limit=3", headers=auth)
    page = await resp.json()
    assert len(page["items"]) == 3
    assert page["next"] is not None
    for bad in ("after=-1", "after=x", "limit=0", "limit=1001"):
        resp = await client.get(f"/v1/calls/{call_id}/events?{bad}", headers=auth)
        assert resp.status == 422, bad
        assert (await resp.json())["error"]["code"] == "invalid"


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


async def test_ticks_the_clock_skips_are_silence_on_the_recordings_time_line(
    start_app: AppFactory,
) -> None:
    client = await start_app()
    token = await add_user(client, "sam@example.com", "supervisor")
    sent = noise_frames(250)
    caller = await start_recorded_call(client, sent)
    started = time.monotonic()
    for at in (1.0, 2.5):
        await asyncio.sleep(at - (time.monotonic() - started))
        time.sleep(0.5)  # noqa: ASYNC251 - the stall under test: no tick runs for 0.5 s
    rec = await finish_and_check(client, caller, sent)
    resp = await client.get(
        f"/v1/recordings/{rec.id}", headers={"Authorization": f"Bearer {token}"}
    )
    shown = await resp.json()
    gaps = shown["gaps"]
    assert [g["reason"] for g in gaps] == ["clock_stall", "clock_stall"]
    for g in gaps:
        assert 0.3 <= g["end_s"] - g["start_s"] <= 0.6
    # The file is as long as the call was recorded: nothing was lost from the time line.
    wall = time.monotonic() - started
    assert wall - 0.5 <= shown["duration_s"] <= wall + 0.5
    metrics = await (await client.get("/metrics")).text()
    assert _metric(metrics, "ivr_clock_ticks_skipped_total") >= 30
    assert _metric(metrics, "ivr_recording_gap_seconds_total") >= 0.6
    resp = await client.get(
        f"/v1/calls/{rec.call_id}", headers={"Authorization": f"Bearer {token}"}
    )
    trace = (await resp.json())["recording_trace"]
    assert "Silence where the server stalled" in trace[-1]
