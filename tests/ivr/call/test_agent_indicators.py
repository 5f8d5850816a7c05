"""What a person agent is told about the recording and transcription (docs/protocol.md).

After ``answered`` the agent gets the indicators' initial state (``off``),
then ``on`` when the recording starts; before its ``hangup`` it gets ``off``,
whoever or whatever ends the call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.agent_helpers import signed_in_agent
from tests.conftest import AppFactory, Caller, add_user


def indicators(agent: Caller) -> list[tuple[str, Any]]:
    """The agent's messages of one call, with only what the order is about."""
    keep = ("answered", "recording", "transcription", "hangup")
    return [(m["type"], m.get("state")) for m in agent.messages if m["type"] in keep]


async def connected_recorded_desk_call(
    client: TestClient[web.Request, web.Application], new_caller: Callable[..., Caller]
) -> tuple[Caller, Caller]:
    token = await add_user(client, "ana@example.com", "agent", ("desk",))
    agent = await signed_in_agent(client, new_caller, token)
    caller = new_caller(client)
    await caller.dial("+15550102")
    await caller.wait_for("prompt", event="start", node="consent")
    await caller.send({"type": "dtmf", "digits": "1"})
    offer = await agent.wait_for("offer")
    assert offer["recording"] is True
    await agent.send({"type": "answer", "call_id": offer["call_id"]})
    await caller.wait_for("recording", state="on")
    await agent.wait_for("transcription", state="on")
    return caller, agent


START = [
    ("answered", None),
    ("recording", "off"),
    ("transcription", "off"),
    ("recording", "on"),
    ("transcription", "on"),
]
END = [("recording", "off"), ("transcription", "off"), ("hangup", None)]


async def test_an_agent_gets_recording_on_after_answered_and_off_before_hangup(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    caller, agent = await connected_recorded_desk_call(client, new_caller)
    await caller.hangup()
    hangup = await agent.wait_for("hangup")
    assert hangup["reason"] == "caller"
    assert indicators(agent) == START + END


async def test_an_agent_gets_recording_off_before_hangup_when_the_server_ends_the_call(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    caller, agent = await connected_recorded_desk_call(client, new_caller)
    for _ in range(51):  # the caller misbehaves past the limit: the call ends with `error`
        await caller.send({"type": "nonsense"})
    hangup = await agent.wait_for("hangup")
    assert hangup["reason"] == "error"
    assert indicators(agent) == START + END
    assert not agent.closed  # the agent stays signed in for the next call


async def test_an_agent_on_a_call_that_is_not_recorded_gets_only_the_initial_state(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    token = await add_user(client, "ana@example.com", "agent", ("desk",))
    agent = await signed_in_agent(client, new_caller, token)
    caller = new_caller(client)
    await caller.dial("+15550102")
    await caller.wait_for("prompt", event="start", node="consent")
    await caller.send({"type": "dtmf", "digits": "2"})
    offer = await agent.wait_for("offer")
    assert offer["recording"] is False
    await agent.send({"type": "answer", "call_id": offer["call_id"]})
    await caller.wait_for("connected")
    await agent.send({"type": "hangup"})
    assert (await agent.wait_for("hangup"))["reason"] == "agent"
    assert indicators(agent) == [
        ("answered", None),
        ("recording", "off"),
        ("transcription", "off"),
        ("hangup", None),
    ]
