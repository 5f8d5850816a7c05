"""Every error code of docs/protocol.md, from the real server; bad input never hurts other calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import AppFactory, Caller

DIAL = {
    "type": "dial",
    "to": "+15550100",
    "from": "+15557654321",
    "codec": "pcm_s16le",
    "rate": 8000,
}


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_json"),
        ('{"digits": "1"}', "missing_field"),
        ({"type": "teleport"}, "unknown_type"),
        ({"type": "dtmf", "digits": "1"}, "not_first"),
        ({"type": "hangup"}, "not_first"),
        ({**DIAL, "to": None}, "missing_field"),
        ({**DIAL, "to": "5550100"}, "bad_field"),
        ({**DIAL, "from": "+1 555 0100"}, "bad_field"),
        ({**DIAL, "rate": "8000"}, "bad_field"),
        ({**DIAL, "codec": "opus"}, "bad_codec"),
        ({**DIAL, "rate": 44100}, "bad_codec"),
    ],
)
async def test_bad_messages_before_dial(
    start_app: AppFactory,
    new_caller: Callable[..., Caller],
    message: dict[str, Any] | str,
    code: str,
) -> None:
    client = await start_app()
    caller = new_caller(client)
    await caller.connect()
    await caller.send(message)
    err = await caller.wait_for("error")
    assert err["code"] == code
    assert err["message"]
    # The connection is still usable: a good dial is answered.
    await caller.send(DIAL)
    await caller.wait_for("answered")


async def test_audio_before_answered_is_bad_frame(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    caller = new_caller(client)
    await caller.connect()
    await caller.send_bytes(bytes(320))
    assert (await caller.wait_for("error"))["code"] == "bad_frame"


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ({"type": "dtmf", "digits": "X"}, "bad_field"),
        ({"type": "dtmf", "digits": ""}, "bad_field"),
        ({"type": "dtmf"}, "missing_field"),
        ({"type": "dtmf", "digits": "1", "duration_ms": -5}, "bad_field"),
        (DIAL, "bad_field"),
        ({"type": "answer"}, "unknown_type"),
    ],
)
async def test_bad_messages_during_a_call(
    start_app: AppFactory, new_caller: Callable[..., Caller], message: dict[str, Any], code: str
) -> None:
    client = await start_app()
    caller = new_caller(client)
    await caller.dial()
    await caller.send(message)
    assert (await caller.wait_for("error"))["code"] == code
    await caller.wait_for("prompt", event="start", node="consent")  # the call goes on


async def test_wrong_frame_size_is_bad_frame_and_counted(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    caller = new_caller(client)
    await caller.dial(rate=16000)
    await caller.send_bytes(bytes(320))  # 16 kHz takes 640 bytes
    err = await caller.wait_for("error")
    assert err["code"] == "bad_frame"
    assert "640" in err["message"]
    hangup = await caller.hangup()
    assert hangup["stats"]["frames_malformed"] == 1


async def test_unknown_number_gets_error_then_hangup_and_1000(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    caller = new_caller(client)
    await caller.connect()
    await caller.send({**DIAL, "to": "+15559999999"})
    assert (await caller.wait_for("error"))["code"] == "unknown_number"
    assert (await caller.wait_for("hangup"))["reason"] == "error"
    await caller.closed_wait()
    assert caller.close_code == 1000


async def test_busy_when_the_server_is_at_its_limit(
    start_app: AppFactory, new_caller: Callable[..., Caller], config_data: dict[str, Any]
) -> None:
    config_data["limits"] = {"max_calls": 1}
    client = await start_app(config_data)
    first = new_caller(client)
    await first.dial()
    second = new_caller(client)
    await second.connect()
    await second.send(DIAL)
    assert (await second.wait_for("error"))["code"] == "busy"
    await second.closed_wait()
    await first.wait_for("prompt", event="start", node="notice")


async def test_a_client_that_keeps_misbehaving_is_closed_with_1008(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    bystander = new_caller(client)
    await bystander.dial()
    caller = new_caller(client)
    await caller.dial()
    for _ in range(60):
        await caller.send("{oops")
    await caller.closed_wait()
    assert caller.close_code == 1008
    assert len(caller.of_type("error")) > 50
    # The other call was not touched.
    await bystander.wait_for("prompt", event="start", node="consent")
    await bystander.send({"type": "dtmf", "digits": "1"})
    await bystander.wait_for("connected")


async def test_garbage_frames_from_many_clients_leave_other_calls_intact(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    good = new_caller(client)
    await good.dial()

    async def vandal(i: int) -> None:
        c = new_caller(client)
        await c.dial()
        for n in (0, 1, 7, 319, 321, 10000):
            await c.send_bytes(bytes(n))
        await c.send('{"type": "dtmf", "digits": "' + "9" * 40 + '"}')

    await asyncio.gather(*(vandal(i) for i in range(5)))
    await good.wait_for("prompt", event="start", node="consent")
    await good.send({"type": "dtmf", "digits": "1"})
    await good.wait_for("connected")
    assert (await good.hangup())["reason"] == "caller"
