"""Baseline B of the capacity benchmark: a bare aiohttp WebSocket server.

Per call it only sends one 320-byte frame every 20 ms (pcm_s16le at 8 kHz:
digital silence) and discards what it receives. It speaks just enough of
docs/protocol.md for the load runner to drive it: ``dial`` is answered with
``answered``, ``hangup`` with ``hangup`` and its ``stats``, then it closes.
No flow, no store, no recording.

Two pacing modes, to compare the softswitch's design against both:

* ``task`` (the default, the B of the issue): one task per call, each
  sleeping until its next 20 ms slot (paced against a start time, so it does
  not drift);
* ``clock``: one task for all calls, ticking every 20 ms, as the softswitch's
  media clock does.

Run: ``python bench/baseline_server.py --port 8090 [--mode clock]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from typing import Any

from aiohttp import WSMsgType, web

FRAME = bytes(320)
TICK_S = 0.02


class Call:
    __slots__ = ("frames_received", "frames_sent", "ws")

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.frames_sent = 0
        self.frames_received = 0

    def stats(self) -> dict[str, Any]:
        return {
            "frames_sent": self.frames_sent,
            "frames_received": self.frames_received,
            "frames_late": 0,
            "frames_dropped": 0,
            "frames_malformed": 0,
            "frames_unsent": 0,
            "recording_id": None,
        }


calls_key = web.AppKey("calls", dict)
mode_key = web.AppKey("mode", str)


async def _send_loop(call: Call) -> None:
    """``task`` mode: this call's own 20 ms schedule."""
    start = time.monotonic()
    k = 0
    with contextlib.suppress(ConnectionError, RuntimeError):
        while not call.ws.closed:
            k += 1
            delay = start + k * TICK_S - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await call.ws.send_bytes(FRAME)
            call.frames_sent += 1


async def _clock(app: web.Application) -> None:
    """``clock`` mode: one schedule for every call."""
    start = time.monotonic()
    k = 0
    while True:
        k += 1
        delay = start + k * TICK_S - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        for call in list(app[calls_key].values()):
            if call.ws.closed:
                continue
            coro = call.ws.send_bytes(FRAME)
            try:  # aiohttp writes an uncompressed frame before its first await
                coro.send(None)
            except StopIteration:
                pass
            except (ConnectionError, RuntimeError):
                continue
            else:
                coro.close()
            call.frames_sent += 1


async def call_handler(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False, max_msg_size=1 << 16)
    await ws.prepare(request)
    call = Call(ws)
    sender: asyncio.Task[None] | None = None
    calls = request.app[calls_key]
    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                call.frames_received += 1
            elif msg.type == WSMsgType.TEXT:
                kind = json.loads(msg.data).get("type")
                if kind == "dial" and id(call) not in calls:
                    await ws.send_str(
                        json.dumps(
                            {
                                "type": "answered",
                                "call_id": f"b{id(call):x}",
                                "codec": "pcm_s16le",
                                "rate": 8000,
                                "ptime": 20,
                            }
                        )
                    )
                    calls[id(call)] = call
                    if request.app[mode_key] == "task":
                        sender = asyncio.get_running_loop().create_task(_send_loop(call))
                elif kind == "hangup":
                    calls.pop(id(call), None)
                    if sender is not None:
                        sender.cancel()
                    await ws.send_str(
                        json.dumps({"type": "hangup", "reason": "caller", "stats": call.stats()})
                    )
                    break
            else:
                break
    finally:
        calls.pop(id(call), None)
        if sender is not None:
            sender.cancel()
        await ws.close()
    return ws


async def _clock_ctx(app: web.Application) -> Any:
    task = asyncio.get_running_loop().create_task(_clock(app)) if app[mode_key] == "clock" else None
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _me(request: web.Request) -> web.Response:
    return web.json_response({"error": {"code": "unauthorized", "message": "baseline"}}, status=401)


def create_app(mode: str = "task") -> web.Application:
    app = web.Application()
    app[calls_key] = {}
    app[mode_key] = mode
    app.cleanup_ctx.append(_clock_ctx)
    app.router.add_get("/v1/call", call_handler)
    app.router.add_get("/v1/me", _me)
    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--mode", choices=["task", "clock"], default="task")
    args = p.parse_args()

    def listening(_: str) -> None:
        print(f"listening on http://{args.host}:{args.port} ({args.mode})", flush=True)

    web.run_app(create_app(args.mode), host=args.host, port=args.port, print=listening)


if __name__ == "__main__":
    main()
