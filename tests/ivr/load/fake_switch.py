"""A server test double for the load runner: a tiny softswitch whose recorder can lie.

It speaks just enough of docs/protocol.md and of the REST API for a consent
scenario: the menu plays at once; ``1`` bridges to a recorded line, ``2`` to
one without recording, any other digit replays the menu. Like the real
server it ticks every 20 ms, sends one frame per tick, and records the
caller's frame of each tick (silence when none came). With ``corrupt`` set it
records the wrong audio, which is what the verification must catch:

* ``swap``: two of the caller's frames change places;
* ``drop``: one of the caller's frames is replaced by other noise;
* ``extra``: an unrecorded call gets a recording anyway.

Used only by the load runner's tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soundfile as sf
from aiohttp import WSMsgType, web

PASSWORD = "fake password"
EMAIL = "sup@example.com"
N = 160  # samples per 20 ms frame at 8 kHz


@dataclass
class FakeCall:
    id: str
    ws: web.WebSocketResponse
    inbound: deque[bytes] = field(default_factory=deque)
    recording: list[np.ndarray] | None = None
    record: bool | None = None
    ended: bool = False
    frames_sent: int = 0
    frames_received: int = 0


@dataclass
class FakeSwitch:
    corrupt: str | None = None
    calls: dict[str, FakeCall] = field(default_factory=dict)
    recordings: dict[str, list[np.ndarray]] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=itertools.count)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/call", self.call)
        app.router.add_get("/v1/me", self.me)
        app.router.add_post("/v1/auth/login", self.login)
        app.router.add_get("/v1/calls/{id}", self.get_call)
        app.router.add_get("/v1/recordings/{id}", self.get_recording)
        app.router.add_get("/v1/recordings/{id}/audio", self.audio)
        return app

    async def me(self, request: web.Request) -> web.Response:
        return web.json_response({"error": {"code": "unauthorized"}}, status=401)

    async def login(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("password") != PASSWORD:
            return web.json_response(
                {"error": {"code": "unauthorized", "message": "no"}}, status=401
            )
        return web.json_response({"token": "fake-token"})

    def _authorised(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != "Bearer fake-token":
            raise web.HTTPUnauthorized()

    async def get_call(self, request: web.Request) -> web.Response:
        self._authorised(request)
        call = self.calls.get(request.match_info["id"])
        if call is None:
            raise web.HTTPNotFound()
        rec_id = f"r{call.id}"
        return web.json_response(
            {
                "id": call.id,
                "end_reason": "caller",
                "recording_decision": None
                if call.record is None
                else {"record": call.record, "in_sample": True, "reasons": []},
                "recordings": [rec_id] if rec_id in self.recordings else [],
            }
        )

    async def get_recording(self, request: web.Request) -> web.Response:
        self._authorised(request)
        frames = self.recordings[request.match_info["id"]]
        return web.json_response(
            {"id": request.match_info["id"], "status": "complete", "duration_s": len(frames) * 0.02}
        )

    async def audio(self, request: web.Request) -> web.Response:
        self._authorised(request)
        frames = list(self.recordings[request.match_info["id"]])
        talk = [i for i, f in enumerate(frames) if np.any(f)]
        if self.corrupt == "swap" and len(talk) >= 2:
            a, b = talk[0], talk[1]
            frames[a], frames[b] = frames[b], frames[a]
        elif self.corrupt == "drop" and talk:
            frames[talk[-1]] = np.full(N, 1234, dtype=np.int16)
        left = np.concatenate(frames) if frames else np.zeros(0, dtype=np.int16)
        stereo = np.stack([left, np.zeros_like(left)], axis=1)
        buf = io.BytesIO()
        sf.write(buf, stereo, 8000, subtype="PCM_16", format="WAV")
        return web.Response(body=buf.getvalue(), content_type="audio/wav")

    async def call(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        call: FakeCall | None = None
        ticker: asyncio.Task[None] | None = None
        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    if call is not None:
                        call.frames_received += 1
                        call.inbound.append(msg.data)
                    continue
                if msg.type != WSMsgType.TEXT:
                    break
                m = json.loads(msg.data)
                if m["type"] == "dial" and call is None:
                    call = FakeCall(f"c{next(self.ids)}", ws)
                    self.calls[call.id] = call
                    await ws.send_json(
                        {
                            "type": "answered",
                            "call_id": call.id,
                            "codec": "pcm_s16le",
                            "rate": 8000,
                            "ptime": 20,
                        }
                    )
                    await ws.send_json(
                        {"type": "prompt", "event": "start", "prompt": "menu", "node": "consent"}
                    )
                    ticker = asyncio.get_running_loop().create_task(self._tick(call))
                elif m["type"] == "dtmf" and call is not None and call.record is None:
                    await self._digit(call, m["digits"][0])
                elif m["type"] == "hangup" and call is not None:
                    break
        finally:
            if call is not None:
                call.ended = True
                if ticker is not None:
                    ticker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await ticker
                rec_id = None
                if call.recording is not None:
                    rec_id = f"r{call.id}"
                    self.recordings[rec_id] = call.recording
                elif self.corrupt == "extra" and call.record is False:
                    rec_id = f"r{call.id}"
                    self.recordings[rec_id] = [np.zeros(N, dtype=np.int16)]
                if not ws.closed:
                    stats = {
                        "frames_sent": call.frames_sent,
                        "frames_received": call.frames_received,
                        "frames_late": 0,
                        "frames_dropped": 0,
                        "frames_malformed": 0,
                        "frames_unsent": 0,
                        "recording_id": rec_id,
                    }
                    await ws.send_json({"type": "hangup", "reason": "caller", "stats": stats})
            await ws.close()
        return ws

    async def _digit(self, call: FakeCall, digit: str) -> None:
        ws = call.ws
        await ws.send_json(
            {
                "type": "prompt",
                "event": "end",
                "prompt": "menu",
                "node": "consent",
                "interrupted": True,
            }
        )
        if digit not in "12":
            await ws.send_json(
                {"type": "prompt", "event": "start", "prompt": "menu", "node": "consent"}
            )
            return
        call.record = digit == "1"
        line = "recorded" if call.record else "private"
        await ws.send_json({"type": "ringing", "line": line})
        await ws.send_json({"type": "connected", "line": line, "agent": "fake bot"})
        if call.record:
            call.recording = []
            await ws.send_json({"type": "recording", "state": "on"})

    async def _tick(self, call: FakeCall) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        k = 0
        silence = bytes(2 * N)
        while not call.ended:
            k += 1
            await asyncio.sleep(max(0.0, start + k * 0.02 - loop.time()))
            frame = call.inbound.popleft() if call.inbound else silence
            if call.recording is not None:
                call.recording.append(np.frombuffer(frame, dtype="<i2").astype(np.int16))
            with contextlib.suppress(ConnectionError, RuntimeError):
                await call.ws.send_bytes(silence)
                call.frames_sent += 1


def fake_scenario(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "fake",
        "to": "+15550100",
        "calls": 4,
        "concurrency": 4,
        "arrival": {"rate_cps": 40},
        "talk": {"seconds": 0.4, "tail_ms": 100},
        "mix": {
            "consent": {"weight": 1, "press_after_s": 0.05},
            "refuse": {"weight": 1, "press_after_s": 0.05},
        },
        "seed": 3,  # two consenting, two refusing callers
        "processes": 0,
        "call_timeout_s": 10,
    }
    data.update(extra)
    return data
