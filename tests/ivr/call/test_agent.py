"""People on ``/v1/agent`` take calls: offer, answer, audio both ways, hang-up."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np

from ivr.server.keys import store_key
from tests.agent_helpers import signed_in_agent
from tests.conftest import AppFactory, Caller, add_user, noise_frames, read_recording


async def test_a_person_answers_and_both_hear_each_other(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    token = await add_user(client, "ana@example.com", "agent", ("desk",))
    agent = await signed_in_agent(client, new_caller, token)
    assert agent.of_type("logged_in") == [{"type": "logged_in", "agent": "Ana", "teams": ["desk"]}]
    caller = new_caller(client)
    answered = await caller.dial("+15550102")
    await caller.wait_for("prompt", event="start", node="consent")
    await caller.send({"type": "dtmf", "digits": "1"})
    offer = await agent.wait_for("offer")
    assert offer == {
        "type": "offer",
        "call_id": answered["call_id"],
        "from": "+15557654321",
        "line": "recorded",
        "recording": True,
    }
    await agent.send({"type": "answer", "call_id": offer["call_id"]})
    assert (await agent.wait_for("answered"))["call_id"] == answered["call_id"]
    # The agent sees the same indicators as the caller (docs/protocol.md): off, then on.
    await agent.wait_for("recording", state="on")
    await agent.wait_for("transcription", state="on")
    kinds = [m["type"] for m in agent.messages]
    assert kinds.index("recording") > kinds.index("answered")
    connected = await caller.wait_for("connected")
    assert connected == {"type": "connected", "line": "recorded", "agent": "Ana"}

    from_caller, from_agent = noise_frames(30, seed=11), noise_frames(30, seed=12)
    agent_frames_before = len(agent.frames)
    caller_frames_before = len(caller.frames)
    caller.start_audio(from_caller)
    agent.start_audio(from_agent)
    await asyncio.sleep(0.8)
    await agent.stop_audio()
    await agent.send({"type": "hangup"})
    hangup = await caller.wait_for("hangup")
    assert hangup["reason"] == "agent"
    assert (await agent.wait_for("hangup"))["reason"] == "agent"
    await caller.closed_wait()

    def pcm(frames: list[bytes]) -> list[bytes]:
        return [f for f in frames if any(f)]

    heard_by_agent = pcm(agent.frames[agent_frames_before:])
    heard_by_caller = pcm(caller.frames[caller_frames_before:])
    sent_by_caller = {f.astype("<i2").tobytes() for f in from_caller}
    sent_by_agent = {f.astype("<i2").tobytes() for f in from_agent}
    assert len(heard_by_agent) >= 20
    assert all(f in sent_by_caller for f in heard_by_agent)
    assert len(heard_by_caller) >= 20
    assert all(f in sent_by_agent for f in heard_by_caller)

    store = client.app[store_key]
    rec = await store.recordings.get(hangup["stats"]["recording_id"])
    assert rec.agent_name == "Ana"
    audio, _ = read_recording(store, rec)
    right = audio[: len(audio) // 160 * 160, 1].reshape(-1, 160)
    assert sum(any(np.array_equal(r, f) for f in from_agent) for r in right if r.any()) >= 20
    call = await store.calls.get(answered["call_id"])
    assert call.agent_id == rec.agent_id
    assert call.agent_name == "Ana"


async def test_rejected_offer_goes_to_the_next_agent_and_no_agent_times_out(
    start_app: AppFactory, new_caller: Callable[..., Caller], config_data: dict[str, object]
) -> None:
    flows = config_data["flows"]
    assert isinstance(flows, dict)
    flows["desk"]["nodes"]["private"]["timeout_s"] = 0.6
    client = await start_app(config_data)
    first = await signed_in_agent(
        client, new_caller, await add_user(client, "a@example.com", "agent", ("desk",))
    )
    second = await signed_in_agent(
        client, new_caller, await add_user(client, "b@example.com", "agent", ("desk",))
    )
    caller = new_caller(client)
    await caller.dial("+15550102")
    await caller.wait_for("prompt", event="start", node="consent")
    await caller.send({"type": "dtmf", "digits": "2"})
    offer = await first.wait_for("offer")  # longest idle first
    assert offer["recording"] is False
    await first.send({"type": "reject", "call_id": offer["call_id"]})
    offer2 = await second.wait_for("offer")
    assert offer2["call_id"] == offer["call_id"]
    await second.send({"type": "reject", "call_id": offer["call_id"]})
    hangup = await caller.wait_for("hangup")  # nobody else: the ring times out
    assert hangup["reason"] == "no_answer"


async def test_owner_may_not_take_calls(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    token = await add_user(client, "olga@example.com", "owner")
    agent = new_caller(client, "/v1/agent")
    await agent.connect()
    await agent.send({"type": "login", "token": token})
    err = await agent.wait_for("error")
    assert err["code"] == "unauthorized"
    await agent.closed_wait()
    assert agent.close_code == 1008


async def test_bad_token_is_refused(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    agent = new_caller(client, "/v1/agent")
    await agent.connect()
    await agent.send({"type": "login", "token": "forged"})
    assert (await agent.wait_for("error"))["code"] == "unauthorized"
    await agent.closed_wait()
    assert agent.close_code == 1008


async def test_agent_at_16k_bridges_with_a_caller_at_8k(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    token = await add_user(client, "wide@example.com", "agent", ("desk",))
    agent = await signed_in_agent(client, new_caller, token, codec="pcm_s16le", rate=16000)
    caller = new_caller(client)
    await caller.dial("+15550102")
    await caller.wait_for("prompt", event="start", node="consent")
    await caller.send({"type": "dtmf", "digits": "1"})
    offer = await agent.wait_for("offer")
    await agent.send({"type": "answer", "call_id": offer["call_id"]})
    answered = await agent.wait_for("answered")
    assert answered["rate"] == 16000
    await caller.wait_for("connected")
    t = np.arange(320 * 40) / 16000
    tone = (6000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16).reshape(40, 320)
    n_before = len(caller.frames)
    agent.start_audio(list(tone))
    await asyncio.sleep(0.7)
    await caller.hangup()
    heard = np.concatenate([np.frombuffer(f, "<i2") for f in caller.frames[n_before:]])
    assert all(len(f) == 320 for f in caller.frames)  # 8 kHz frames for the caller
    spectrum = np.abs(np.fft.rfft(heard.astype(float)))
    peak_hz = np.argmax(spectrum) * 8000 / len(heard)
    assert abs(peak_hz - 1000) < 20
