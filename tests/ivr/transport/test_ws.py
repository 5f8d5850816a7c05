"""The WebSocket transport's own frame writing, against RFC 6455 and a real client on loopback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient

from ivr.transport import ws as ws_module
from ivr.transport.ws import _binary_header, open_socket
from tests.conftest import AppServer

Handler = Callable[[web.Request], Awaitable[web.WebSocketResponse]]


@contextlib.asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """``handler`` on ``/ws``, served on loopback by the server's own runner."""
    app = web.Application()
    app.router.add_get("/ws", handler)
    async with TestClient(AppServer(app)) as client:
        yield client


def test_headers_are_those_of_rfc_6455_section_5_7() -> None:
    # "256 bytes binary message in a single unmasked frame": 0x82 0x7E 0x0100
    assert _binary_header(256) == bytes.fromhex("827e0100")
    # "64KiB binary message in a single unmasked frame": 0x82 0x7F 0x0000000000010000
    assert _binary_header(65536) == bytes.fromhex("827f0000000000010000")
    assert _binary_header(0) == b"\x82\x00"
    assert _binary_header(125) == b"\x82\x7d"
    assert _binary_header(126) == bytes.fromhex("827e007e")
    assert _binary_header(65535) == bytes.fromhex("827effff")


async def test_audio_and_messages_arrive_whole_and_in_the_order_sent() -> None:
    payloads = [
        bytes([i % 256]) * size for i, size in enumerate([160, 320, 640, 1, 125, 126, 4000])
    ]
    results: dict[str, Any] = {}

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws, transport = await open_socket(request)
        sent = []
        for i, payload in enumerate(payloads):
            sent.append(transport.send_audio(payload))
            transport.send_message({"type": "note", "i": i})
        transport.close(1000)
        await asyncio.sleep(0)
        results["after_close"] = transport.send_audio(payloads[0])
        results["sent"] = sent
        async for _ in ws:
            pass
        return ws

    async with serving(handler) as client:
        ws = await client.ws_connect("/ws")
        got: list[Any] = []
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                got.append(msg.data)
            elif msg.type == WSMsgType.TEXT:
                got.append(msg.json())
        assert ws.close_code == 1000
    expected: list[Any] = []
    for i, payload in enumerate(payloads):
        expected += [payload, {"type": "note", "i": i}]
    assert got == expected
    assert results["sent"] == [True] * len(payloads)
    assert results["after_close"] is False


async def test_audio_for_a_client_that_does_not_read_is_dropped_not_queued() -> None:
    """Past MAX_WRITE_BUFFER unsent, send_audio says False: the clock is never held up."""
    outcome: dict[str, int] = {}
    done = asyncio.Event()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws, transport = await open_socket(request)
        accepted = refused = 0
        for _ in range(20_000):  # 6.4 MB of 320-byte frames, far more than a socket holds
            if transport.send_audio(b"\x00" * 320):
                accepted += 1
            else:
                refused += 1
        outcome.update(accepted=accepted, refused=refused)
        done.set()
        transport.close(1000)
        return ws

    async with serving(handler) as client:
        ws = await client.ws_connect("/ws", autoclose=False)
        await asyncio.wait_for(done.wait(), 10)  # the client has read nothing yet
        await ws.close()
    assert outcome["refused"] > 0
    assert 0 < outcome["accepted"] < 20_000


@pytest.mark.parametrize("code", [1000, 1008])
async def test_nothing_is_written_once_closing(code: int) -> None:
    states: list[bool] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws, transport = await open_socket(request)
        transport.close(code)
        states.append(transport.send_audio(b"\x01" * 320))
        async for _ in ws:
            pass
        return ws

    async with serving(handler) as client:
        ws = await client.ws_connect("/ws")
        kinds = [msg.type async for msg in ws]
        assert WSMsgType.BINARY not in kinds
        assert ws.close_code == code
    assert states == [False]


async def test_audio_is_taken_as_parsed_while_the_handler_waits_elsewhere() -> None:
    """Frames reach the sink without the handler reading; behind a queued text, order is kept."""
    taken: list[bytes] = []
    results: dict[str, Any] = {}
    first_batch = asyncio.Event()
    go_on = asyncio.Event()

    def sink(payload: bytes) -> bool:
        if len(payload) != 320:  # declined: the handler gets it from the queue
            return False
        taken.append(payload)
        if len(taken) == 50:
            first_batch.set()
        return True

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws, _transport = await open_socket(request)
        ws.take_audio(sink)
        await go_on.wait()  # not reading: only the sink can see the frames
        results["taken_while_waiting"] = len(taken)
        got: list[Any] = []
        async for msg in ws:
            got.append(msg.data)
            if len(got) == 3:
                break
        results["queued"] = got
        assert ws.audio is not None
        results["counted"] = ws.audio.taken
        await ws.close()
        return ws

    async with serving(handler) as client:
        ws = await client.ws_connect("/ws")
        frames = [bytes([i]) * 320 for i in range(50)]
        for frame in frames:
            await ws.send_bytes(frame)
        await asyncio.wait_for(first_batch.wait(), 10)
        await ws.send_bytes(b"\x07" * 100)  # the wrong size: declined, queued
        await ws.send_str("after")  # queued behind it
        await ws.send_bytes(b"\x09" * 320)  # behind a queued message: queued, not taken
        await asyncio.sleep(0.2)
        go_on.set()
        async for _ in ws:
            pass
    assert results["taken_while_waiting"] == 50
    assert taken == frames
    assert results["queued"] == [b"\x07" * 100, "after", b"\x09" * 320]
    assert results["counted"] == 50


async def _dropped(heartbeat: float, client_pongs: bool, client_talks: bool) -> bool:
    """Whether a MediaSocket with ``heartbeat`` drops a client within four heartbeats."""

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = ws_module.MediaSocket(heartbeat=heartbeat)
        await ws.prepare(request)
        async for _ in ws:
            pass
        return ws

    ended = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)
    async with serving(handler) as client:
        ws = await client.ws_connect("/ws", autoping=client_pongs)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + heartbeat * 4
        while loop.time() < deadline:
            if client_talks:
                await ws.send_bytes(b"\x00" * 320)
            with contextlib.suppress(TimeoutError):
                if (await ws.receive(timeout=0.05)).type in ended:
                    return True
        await ws.close()
    return False


async def test_heartbeat_drops_a_silent_client_that_does_not_answer_pings() -> None:
    assert await _dropped(0.3, client_pongs=False, client_talks=False)


async def test_heartbeat_keeps_a_client_that_answers_pings_or_keeps_talking() -> None:
    assert not await _dropped(0.3, client_pongs=True, client_talks=False)
    assert not await _dropped(0.3, client_pongs=False, client_talks=True)
