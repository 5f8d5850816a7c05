"""The server keeps what it builds at start-up out of the garbage collector's full passes."""

from __future__ import annotations

import asyncio
import gc
import weakref

from aiohttp import web
from aiohttp.test_utils import TestClient

from ivr.transport.ws import open_socket
from tests.conftest import AppFactory, AppServer


async def test_start_up_objects_are_frozen_while_serving_and_released_after(
    start_app: AppFactory,
) -> None:
    before = gc.get_freeze_count()
    client = await start_app()
    # The switchboard, the prompts and the config were built before the freeze.
    assert gc.get_freeze_count() > before
    resp = await client.get("/metrics")
    assert resp.status == 200
    await client.close()
    assert gc.get_freeze_count() == 0


async def test_a_closed_websocket_connection_is_freed_without_the_cycle_collector() -> None:
    """Its response, request and handler go with their last reference, not at a full pass.

    aiohttp leaves the heartbeat's callback on the connection's handler, a
    cycle; the server's handler drops it when the connection is lost.
    """
    seen: list[weakref.ref[web.WebSocketResponse]] = []
    handled = asyncio.Event()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws, _transport = await open_socket(request)  # with the 30 s heartbeat
        seen.append(weakref.ref(ws))
        async for _ in ws:
            pass
        handled.set()
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    gc.collect()
    gc.disable()
    try:
        async with TestClient(AppServer(app)) as client:
            ws = await client.ws_connect("/ws")
            await ws.send_str("hello")
            await ws.close()
            await asyncio.wait_for(handled.wait(), 5)
            for _ in range(100):  # the connection is lost a moment after the close
                await asyncio.sleep(0.01)
                if seen[0]() is None:
                    break
            assert seen[0]() is None
    finally:
        gc.enable()
