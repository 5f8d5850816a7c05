"""The chaos test's attacker: a mix of hostile and broken clients against a real server.

Run as its own process (``python -m tests.chaos``) by ``tests/ivr/test_chaos.py``,
niced, so that its own CPU does not come out of the honest callers' share.
Several workers pick attacks in turn for the given seconds; each attack
checks that the server answered as docs/protocol.md and docs/access.md say
(the right error code, status or close code) and counts the outcome. The
summary, written as JSON, is what the test asserts on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import websockets
from websockets.asyncio.client import ClientConnection

Outcome = tuple[bool, str]  # answered as documented?, what was seen
DIAL = {
    "type": "dial",
    "to": "+15550199",
    "from": "+15557654321",
    "codec": "pcm_s16le",
    "rate": 8000,
}
FRAME = bytes(320)


@dataclass
class World:
    http: str
    ws: str
    supervisor: str  # a bearer token
    agent_tokens: list[str]
    call_id: str | None = None
    session: aiohttp.ClientSession = field(init=False)


async def _ws(world: World, **extra: Any) -> ClientConnection:
    return await websockets.connect(
        world.ws, max_size=1 << 20, open_timeout=10, close_timeout=2, **extra
    )


async def _until_answered(ws: ClientConnection) -> dict[str, Any]:
    while True:
        raw = await asyncio.wait_for(ws.recv(), 10)
        if isinstance(raw, str):
            m: dict[str, Any] = json.loads(raw)
            if m["type"] in ("answered", "error", "hangup"):
                return m


async def _errors_until_close(ws: ClientConnection, timeout: float = 15) -> list[str]:
    """The error codes the server sends until it closes (read as they come, so that
    the client answers the server's close frame in time)."""
    codes = []
    try:
        async with asyncio.timeout(timeout):
            async for raw in ws:
                if isinstance(raw, str):
                    m = json.loads(raw)
                    if m["type"] == "error":
                        codes.append(m["code"])
    except websockets.ConnectionClosed:
        pass
    return codes


async def dtmf_flood(world: World) -> Outcome:
    """Valid digits as fast as the socket takes them, on one call."""
    async with await _ws(world) as ws:
        await ws.send(json.dumps(DIAL))
        answered = await _until_answered(ws)
        world.call_id = answered.get("call_id", world.call_id)
        reader = asyncio.create_task(_errors_until_close(ws))
        message = json.dumps({"type": "dtmf", "digits": "1"})
        with contextlib.suppress(websockets.ConnectionClosed):
            for _ in range(20000):
                await ws.send(message)
        codes = await reader
        return ws.close_code == 1008 and "rate_limited" in codes, f"{ws.close_code} {codes[-3:]}"


async def frame_flood(world: World) -> Outcome:
    """Audio frames far faster than real time."""
    async with await _ws(world) as ws:
        await ws.send(json.dumps(DIAL))
        await _until_answered(ws)
        reader = asyncio.create_task(_errors_until_close(ws))
        with contextlib.suppress(websockets.ConnectionClosed):
            for _ in range(5000):
                await ws.send(FRAME)
        codes = await reader
        return ws.close_code == 1008 and "rate_limited" in codes, f"{ws.close_code} {codes[-3:]}"


async def bad_frames(world: World) -> Outcome:
    """Frames of the wrong size, at real-time pace, until the error limit closes the call."""
    async with await _ws(world) as ws:
        await ws.send(json.dumps(DIAL))
        await _until_answered(ws)
        reader = asyncio.create_task(_errors_until_close(ws))
        with contextlib.suppress(websockets.ConnectionClosed):
            for _ in range(60):
                await ws.send(b"\x01" * 100)
                await asyncio.sleep(0.02)
        codes = await reader
        ok = ws.close_code == 1008 and "bad_frame" in codes and "too_many_errors" in codes
        return ok, f"{ws.close_code} {codes[-2:]}"


async def bad_json(world: World) -> Outcome:
    """Malformed JSON before any dial, until the error limit closes the socket."""
    async with await _ws(world) as ws:
        reader = asyncio.create_task(_errors_until_close(ws))
        with contextlib.suppress(websockets.ConnectionClosed):
            for _ in range(60):
                await ws.send("{not json")
                await asyncio.sleep(0.01)
        codes = await reader
        ok = ws.close_code == 1008 and codes[0] == "bad_json" and "too_many_errors" in codes
        return ok, f"{ws.close_code} {codes[:1]}"


JUNK_IDS = [
    "+15557654321 junk",
    "+15557654321\n2026-01-01 INFO ivr.call forged line",
    "<script>alert(1)</script>",
    "+1" + "5" * 60000,
    "+15557654321\n",
]


async def junk_caller_ids(world: World) -> Outcome:
    """Caller ids with trailing junk, a newline, HTML, 60,000 characters."""
    async with await _ws(world) as ws:
        codes = []
        for junk in JUNK_IDS:
            await ws.send(json.dumps({**DIAL, "from": junk}))
            m = await _until_answered(ws)
            codes.append(m.get("code"))
        await ws.close()
        return codes == ["bad_field"] * len(JUNK_IDS), str(codes)


async def unknown_number(world: World) -> Outcome:
    async with await _ws(world) as ws:
        await ws.send(json.dumps({**DIAL, "to": "+15559999999"}))
        codes = await _errors_until_close(ws)
        return codes == ["unknown_number"] and ws.close_code == 1000, f"{ws.close_code} {codes}"


async def oversize_message(world: World) -> Outcome:
    """A text message over the 64 KiB limit."""
    async with await _ws(world) as ws:
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.send("x" * 70000)
        await _errors_until_close(ws)
        return ws.close_code == 1009, str(ws.close_code)


async def slow_reader(world: World) -> Outcome:
    """A call whose client stops reading: the server drops its audio, never waits for it."""
    async with await _ws(world, max_queue=1) as ws:
        await ws.send(json.dumps(DIAL))
        await _until_answered(ws)
        await asyncio.sleep(4)  # not reading: the server's writes back up
        await ws.send(json.dumps({"type": "hangup"}))
        return True, "read nothing for 4 s"


async def idle(world: World) -> Outcome:
    async with await _ws(world):
        await asyncio.sleep(3)
    return True, "idle 3 s"


async def wrong_logins(world: World) -> Outcome:
    """24 concurrent wrong passwords for one account: the limit holds (429s)."""
    body = {"email": "agent@example.com", "password": "not the password"}

    async def one() -> int:
        async with world.session.post(f"{world.http}/v1/auth/login", json=body) as r:
            return r.status

    statuses = await asyncio.gather(*(one() for _ in range(24)))
    count = Counter(statuses)
    return count[401] <= 5 and count[429] >= 19, str(dict(count))


async def gzip_bomb(world: World) -> Outcome:
    """A small gzip body that inflates to 200 MB, without signing in."""
    bomb = gzip.compress(b"\0" * (200 << 20), 9)
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    async with world.session.post(f"{world.http}/v1/auth/login", data=bomb, headers=headers) as r:
        body = await r.json(content_type=None)
        return r.status == 415 and "error" in body, f"{r.status}"


async def wrong_content_type(world: World) -> Outcome:
    data = json.dumps({"email": "a@example.com", "password": "x"})
    async with world.session.post(
        f"{world.http}/v1/auth/login", data=data, headers={"Content-Type": "application/xml"}
    ) as r:
        body = await r.json(content_type=None)
        return r.status == 415 and body["error"]["code"] == "unsupported_media_type", str(r.status)


async def broken_http(world: World) -> Outcome:
    """A request aiohttp's own parser refuses: a JSON error, not a traceback."""
    host, port = world.http.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /v1/me HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n")
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = head.split(b"\r\n")[0]
    ok = status.startswith(b"HTTP/1.") and status[9:12] == b"400" and b'"bad_request"' in body
    return ok, head.split(b"\r\n")[0].decode(errors="replace")


async def foreign_origin(world: World) -> Outcome:
    """A call placed from another site's page (cross-site WebSocket hijacking)."""
    try:
        async with await _ws(world, origin="https://evil.example"):
            return False, "upgraded"
    except websockets.InvalidStatus as exc:
        return exc.response.status_code == 403, str(exc.response.status_code)


async def path_tricks(world: World) -> Outcome:
    auth = {"Authorization": f"Bearer {world.supervisor}"}
    statuses = []
    for path in (
        "/v1/recordings/..%2f..%2fetc%2fpasswd/audio",
        "/v1/recordings/%00/audio",
        "/v1/calls/" + "x" * 5000,
        "/v1/../../etc/passwd",
    ):
        async with world.session.get(f"{world.http}{path}", headers=auth) as r:
            body = await r.json(content_type=None)
            statuses.append(r.status if "error" in body else -r.status)
    return all(s in (404, 414, 431) for s in statuses), str(statuses)


async def heavy_reads(world: World) -> Outcome:
    """The biggest pages the API gives, and the flooded call: bounded answers."""
    auth = {"Authorization": f"Bearer {world.supervisor}"}
    async with world.session.get(f"{world.http}/v1/calls?limit=500", headers=auth) as r:
        ok = r.status == 200
    if world.call_id is not None:
        async with world.session.get(f"{world.http}/v1/calls/{world.call_id}", headers=auth) as r:
            body = await r.json()
            ok = ok and r.status == 200 and len(body["events"]) <= 500
    return ok, "bounded"


async def revoked_agent(world: World) -> Outcome:
    """An agent signed in on /v1/agent whose token is then revoked: the seat ends."""
    if not world.agent_tokens:
        return True, "no token left"
    token = world.agent_tokens.pop()
    url = world.ws.replace("/v1/call", "/v1/agent")
    async with websockets.connect(url, open_timeout=10, close_timeout=2) as ws:
        await ws.send(json.dumps({"type": "login", "token": token}))
        m = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if m["type"] != "logged_in":
            return False, str(m)
        await ws.send(json.dumps({"type": "ready"}))
        auth = {"Authorization": f"Bearer {token}"}
        async with world.session.post(f"{world.http}/v1/auth/logout", headers=auth) as r:
            assert r.status == 204
        codes = await _errors_until_close(ws)
        return codes == ["unauthorized"] and ws.close_code == 1008, f"{ws.close_code} {codes}"


ATTACKS: dict[str, Callable[[World], Awaitable[Outcome]]] = {
    f.__name__: f
    for f in (
        dtmf_flood,
        frame_flood,
        bad_frames,
        bad_json,
        junk_caller_ids,
        unknown_number,
        oversize_message,
        slow_reader,
        idle,
        wrong_logins,
        gzip_bomb,
        wrong_content_type,
        broken_http,
        foreign_origin,
        path_tricks,
        heavy_reads,
        revoked_agent,
    )
}


async def run(world: World, seconds: float, workers: int) -> dict[str, Any]:
    results: dict[str, dict[str, Any]] = {
        name: {"runs": 0, "as_documented": 0, "not": []} for name in ATTACKS
    }
    names = list(ATTACKS)
    deadline = time.monotonic() + seconds

    async def worker(start: int) -> None:
        i = start
        while time.monotonic() < deadline:
            name = names[i % len(names)]
            i += workers
            r = results[name]
            r["runs"] += 1
            try:
                ok, seen = await asyncio.wait_for(ATTACKS[name](world), 30)
            except Exception as exc:  # an attack that broke is a finding, not a crash
                ok, seen = False, f"{type(exc).__name__}: {exc}"[:200]
            if ok:
                r["as_documented"] += 1
            elif len(r["not"]) < 5:
                r["not"].append(seen)
            await asyncio.sleep(0.05)

    async with aiohttp.ClientSession() as session:
        world.session = session
        await asyncio.gather(*(worker(k) for k in range(workers)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="http://HOST:PORT of the server")
    parser.add_argument("--tokens", type=Path, required=True, help="JSON: supervisor, agents")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    os.nice(10)
    tokens = json.loads(args.tokens.read_text())
    world = World(
        http=args.url,
        ws=args.url.replace("http://", "ws://", 1) + "/v1/call",
        supervisor=tokens["supervisor"],
        agent_tokens=list(tokens["agents"]),
    )
    results = asyncio.run(run(world, args.seconds, args.workers))
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
