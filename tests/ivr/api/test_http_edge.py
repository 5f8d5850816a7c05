"""HTTP hardening, against the real app on loopback sockets.

Each test sends what a careless or hostile client would, and checks that the
answer is the documented JSON error and that nothing else is disturbed: the
attacks that could stall the event loop run beside an honest call, whose
frames must stay on time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher, extract_parameters
from prometheus_client.parser import text_string_to_metric_families

from ivr.access.auth import CHEAP, LoginLimiter
from ivr.errors import InvalidConfig
from ivr.server.app import metrics_addresses
from ivr.server.keys import authenticator_key, settings_key
from ivr.server.serving import parser_reason
from tests.conftest import (
    AppFactory,
    Caller,
    add_user,
    build_config,
    noise_frames,
    write_yaml,
)
from tests.ivr.test_cli import _free_port

Client = TestClient[web.Request, web.Application]

INFLATED_BYTES = 200 * 1024 * 1024  # what the bomb inflates to


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """About 200 KB of gzip that inflates to 200 MB of zeros."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip wrapper
    block = bytes(1 << 20)
    parts = [packer.compress(block) for _ in range(INFLATED_BYTES // len(block))]
    parts.append(packer.flush())
    return b"".join(parts)


async def tick_lateness(client: Client) -> dict[float, float]:
    """The media clock's lateness histogram from ``/metrics``: upper edge -> ticks at or under."""
    text = await (await client.get("/metrics")).text()
    out: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "ivr_clock_tick_lateness_seconds":
            for s in family.samples:
                if s.name.endswith("_bucket"):
                    out[float(s.labels["le"])] = s.value
    return out


def late_ticks(before: dict[float, float], after: dict[float, float], over_s: float) -> int:
    """Ticks between two snapshots that ran more than ``over_s`` late."""
    total = after[float("inf")] - before[float("inf")]
    return int(total - (after[over_s] - before[over_s]))


# The honest caller sends this many frames ahead (80 ms): the server's jitter
# buffer (10 frames) then rides out the test machine's own scheduling hiccups
# (this process shares two cores with other test runs), while a stall of the
# kind under test (a quarter to half a second) still empties or overflows it.
LEAD_FRAMES = 4


async def with_honest_call(
    client: Client,
    new_caller: Callable[..., Caller],
    attack: Callable[[], Awaitable[None]],
    frames: int = 100,
) -> dict[str, Any]:
    """Run ``attack`` while a consenting caller talks ``frames`` frames in real time.

    Returns the call's hangup stats, after checking that the call lost no frame
    and that its recording holds, frame by frame, the audio that was sent.
    """
    sup = await add_user(client, "qa@example.com", "supervisor")
    caller = new_caller(client)
    await caller.dial("+15550100")
    answered = time.monotonic()
    await caller.wait_for("prompt", event="start", node="consent")
    await caller.send({"type": "dtmf", "digits": "1"})
    await caller.wait_for("connected")
    sent = noise_frames(frames, seed=7)
    caller.start_audio(sent, lead=LEAD_FRAMES)
    await asyncio.sleep(0.2)
    await attack()
    await caller.audio_sent()
    assert len(caller.sent_at) == frames
    hangup = await caller.hangup()
    up_s = time.monotonic() - answered
    await caller.closed_wait()
    stats: dict[str, Any] = hangup["stats"]
    # The server's side kept pace too: a frame every 20 ms, none skipped.
    assert stats["frames_sent"] >= up_s / 0.02 - 5, (stats, up_s)
    assert stats["frames_received"] == frames, stats
    assert stats["frames_late"] == 0, stats
    assert stats["frames_dropped"] == 0, stats
    resp = await client.get(
        f"/v1/recordings/{stats['recording_id']}/audio",
        headers={"Authorization": f"Bearer {sup}"},
    )
    assert resp.status == 200
    wav = await resp.read()
    left = np.frombuffer(wav[44:], dtype="<i2").reshape(-1, 2)[:, 0]
    want = np.concatenate(sent)
    # The caller's channel holds the sent frames in order, from the tick where
    # playout started, up to the frames still in the jitter buffer when the
    # hangup arrived (the lead and the two playout starts with).
    start = int(np.flatnonzero(left)[0])
    assert start % 160 == 0
    heard = left[start:]
    assert len(heard) >= len(want) - (LEAD_FRAMES + 3) * 160
    assert np.array_equal(heard, want[: len(heard)])
    return stats


# -- 1. compressed and oversize bodies ---------------------------------------


async def test_a_gzip_bomb_is_refused_unread_and_the_call_keeps_time(
    start_app: AppFactory, new_caller: Callable[..., Caller], gzip_bomb: bytes
) -> None:
    client = await start_app()
    before = await tick_lateness(client)
    answers: list[tuple[int, dict[str, Any]]] = []

    async def bomb() -> None:
        resp = await client.post(
            "/v1/auth/login",
            data=gzip_bomb,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
        answers.append((resp.status, await resp.json()))

    async def attack() -> None:
        for _ in range(2):
            await bomb()
        await asyncio.gather(*(bomb() for _ in range(3)))

    await with_honest_call(client, new_caller, attack)
    after = await tick_lateness(client)
    assert late_ticks(before, after, 0.1) == 0
    assert len(answers) == 5
    for status, body in answers:
        assert status == 415
        assert body["error"]["code"] == "unsupported_media_type"
        assert "gzip" in body["error"]["message"]


async def raw_exchange(
    client: Client, head: bytes, body: bytes = b"", wait_s: float = 5.0
) -> tuple[bytes, bool]:
    """Send ``head`` and ``body`` on a fresh socket; what came back, and whether the server closed.

    Reads until the server closes the connection or ``wait_s`` passes.
    """
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(head + body)
        await writer.drain()
        got = b""
        closed = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while (left := deadline - loop.time()) > 0:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), left)
            except TimeoutError:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            got += chunk
        return got, closed
    finally:
        writer.close()


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    return status, headers, body


@pytest.mark.parametrize(
    ("encoding", "status"), [("gzip", 415), ("deflate", 415), ("br", 415), ("identity", 413)]
)
async def test_a_refused_body_is_not_read_after_the_answer(
    start_app: AppFactory, encoding: str, status: int
) -> None:
    client = await start_app()
    declared = 50_000_000
    head = (
        "POST /v1/auth/login HTTP/1.1\r\n"
        f"Host: {client.server.host}:{client.server.port}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Encoding: {encoding}\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()
    # Only a part of the declared body is sent: the server must answer at once
    # and close, not wait (up to 10 s) for the rest in order to throw it away.
    got, closed = await raw_exchange(client, head, bytes(256 * 1024), wait_s=5.0)
    code, headers, body = split_response(got)
    assert code == status
    assert closed
    assert headers["connection"] == "close"
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body[: int(headers["content-length"])])["error"]
    if status == 415:
        assert error["code"] == "unsupported_media_type"
        assert encoding in error["message"]
        assert headers["accept-encoding"] == "identity"
    else:
        assert error["code"] == "too_large"


async def test_identity_is_the_one_accepted_coding(start_app: AppFactory) -> None:
    client = await start_app()
    await add_user(client, "sam@example.com", "supervisor")
    body = {"email": "sam@example.com", "password": "correct horse battery"}
    for coding in ("identity", "IDENTITY"):
        resp = await client.post("/v1/auth/login", json=body, headers={"Content-Encoding": coding})
        assert resp.status == 200, await resp.text()
    # A coding named on a request without a body refuses nothing.
    resp = await client.get("/v1/openapi.json", headers={"Content-Encoding": "gzip"})
    assert resp.status == 200


async def test_a_body_that_arrives_in_pieces_is_read_whole(start_app: AppFactory) -> None:
    client = await start_app()
    await add_user(client, "sam@example.com", "supervisor")
    raw = json.dumps({"email": "sam@example.com", "password": "correct horse battery"}).encode()

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(raw), 10):
            yield raw[i : i + 10]
            await asyncio.sleep(0.01)

    resp = await client.post(
        "/v1/auth/login", data=pieces(), headers={"Content-Type": "application/json"}
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["user"]["email"] == "sam@example.com"


# -- 2. the login limit under concurrency ------------------------------------


async def logins(client: Client, email: str, passwords: list[str]) -> list[int]:
    """POST every password for ``email`` at once; the statuses, in order."""

    async def one(password: str) -> int:
        resp = await client.post("/v1/auth/login", json={"email": email, "password": password})
        body = await resp.json()
        if resp.status == 429:
            assert body["error"]["code"] == "too_many_attempts"
            assert int(resp.headers["Retry-After"]) == body["error"]["retry_after_s"] > 0
        return resp.status

    return list(await asyncio.gather(*(one(p) for p in passwords)))


async def test_concurrent_wrong_logins_get_exactly_the_limit_of_401s(
    start_app: AppFactory,
) -> None:
    client = await start_app()
    await add_user(client, "sam@example.com", "supervisor")
    statuses = await logins(client, "sam@example.com", [f"guess {i}" for i in range(24)])
    assert sorted(statuses) == [401] * 5 + [429] * 19


async def test_the_right_password_among_concurrent_guesses_after_the_limit_does_not_get_in(
    start_app: AppFactory,
) -> None:
    client = await start_app()
    await add_user(client, "sam@example.com", "supervisor")
    # Twelve connections, then twelve requests written in one go, with no await
    # in between: the server reads them in that order and judges them all
    # before any password check has finished. The right password comes after
    # five wrong ones, so the five are the limit and it must not get in.
    guesses = [f"guess {i}" for i in range(11)]
    guesses.insert(5, "correct horse battery")
    conns = [await asyncio.open_connection(client.server.host, client.server.port) for _ in guesses]
    for (_, writer), password in zip(conns, guesses, strict=True):
        body = json.dumps({"email": "sam@example.com", "password": password}).encode()
        writer.write(
            b"POST /v1/auth/login HTTP/1.1\r\nHost: ivr\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
    answers = await asyncio.gather(*(reader.read() for reader, _ in conns))
    for _, writer in conns:
        writer.close()
    statuses = [split_response(a)[0] for a in answers]
    assert statuses == [401] * 5 + [429] * 7
    # And once locked, it stays locked for the right password too.
    assert await logins(client, "sam@example.com", ["correct horse battery"] * 3) == [429] * 3


async def test_a_success_clears_the_account_but_not_the_address(start_app: AppFactory) -> None:
    client = await start_app()
    await add_user(client, "sam@example.com", "supervisor")
    await add_user(client, "ana@example.com", "agent")  # one success from this address
    # Four failures and a success at once: the success was no failure of the
    # address, and it clears the account.
    attempt = [f"wrong {i}" for i in range(4)] + ["correct horse battery"]
    assert sorted(await logins(client, "sam@example.com", attempt)) == [200] + [401] * 4
    assert await logins(client, "sam@example.com", ["wrong again"]) == [401]
    # That was the address's fifth failure: now every account is locked from here.
    assert await logins(client, "ana@example.com", ["correct horse battery"]) == [429]


def test_the_limit_counts_attempts_from_their_start_and_refusals_never() -> None:
    clock = [1000.0]
    limiter = LoginLimiter(limit=3, window_s=60.0, now=lambda: clock[0])
    pending = [limiter.begin("email:a", "addr:x") for _ in range(3)]
    assert [a.retry_after_s for a in pending] == [0, 0, 0]
    # Three attempts are being judged: a fourth is refused before any verdict.
    assert limiter.begin("email:a", "addr:x").retry_after_s == 61  # whole seconds, rounded up
    # One of them succeeds: it gives its attempt back and clears the account.
    limiter.succeeded(pending[0], clear="email:a")
    assert limiter.begin("email:b", "addr:x").retry_after_s == 0
    clock[0] += 30
    # The address has three counted (two failures and the new one); refusals
    # in between are not counted, so the lock ends when the oldest is 60 s old.
    for _ in range(5):
        assert limiter.begin("email:c", "addr:x").retry_after_s == 31
    clock[0] += 30
    assert limiter.begin("email:c", "addr:x").retry_after_s == 0
    # A server error gives the attempt back everywhere.
    other = limiter.begin("email:d", "addr:y")
    limiter.abandoned(other)
    assert [limiter.begin("email:d", "addr:y").retry_after_s for _ in range(4)] == [0, 0, 0, 61]


# -- 3. Range requests on recordings -----------------------------------------


async def recorded_call(client: Client, new_caller: Callable[..., Caller]) -> str:
    """One short recorded call on the sales line; its recording id."""
    caller = new_caller(client)
    await caller.dial("+15550101")
    await caller.wait_for("connected")
    caller.start_audio(noise_frames(10))
    await caller.audio_sent()
    hangup = await caller.hangup()
    await caller.closed_wait()
    rec_id: str = hangup["stats"]["recording_id"]
    return rec_id


async def test_range_requests_follow_rfc_9110(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    sup = await add_user(client, "sup@example.com", "supervisor")
    url = f"/v1/recordings/{await recorded_call(client, new_caller)}/audio"

    async def get(**headers: str) -> tuple[int, Any, bytes]:
        resp = await client.get(url, headers={"Authorization": f"Bearer {sup}", **headers})
        return resp.status, resp.headers, await resp.read()

    status, headers, whole = await get()
    assert status == 200
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["Content-Type"] == "audio/wav"
    size = len(whole)
    assert size == int(headers["Content-Length"]) > 44
    # One satisfiable range: 206 with exactly those bytes.
    for spec, want in [
        ("bytes=0-43", range(0, 44)),
        ("bytes=100-", range(100, size)),
        ("bytes=10-99999999", range(10, size)),
        ("bytes=-10", range(size - 10, size)),
        ("bytes=-99999999", range(0, size)),
        (f"bytes={size - 1}-{size - 1}", range(size - 1, size)),
        ("Bytes=0-0", range(0, 1)),
    ]:
        status, headers, body = await get(Range=spec)
        assert status == 206, spec
        assert body == whole[want.start : want.stop], spec
        assert headers["Content-Range"] == f"bytes {want.start}-{want.stop - 1}/{size}", spec
    # Unsatisfiable or invalid: 416 with the length, and a JSON error naming the range.
    for spec in (
        "bytes=-0",
        f"bytes={size}-",
        f"bytes={size + 5}-{size + 9}",
        "bytes=5-2",
        "bytes=x",
    ):
        status, headers, body = await get(Range=spec)
        assert status == 416, spec
        assert headers["Content-Range"] == f"bytes */{size}", spec
        error = json.loads(body)["error"]
        assert error["code"] == "range_not_satisfiable"
        assert spec in error["message"]
    # Several ranges, another unit, or an If-Range this server cannot match: the whole file.
    for headers_in in (
        {"Range": "bytes=0-1,5-9"},
        {"Range": "bytes=0-1, -5"},
        {"Range": "items=0-1"},
        {"Range": "bytes=0-1", "If-Range": '"some-etag"'},
    ):
        status, headers, body = await get(**headers_in)
        assert status == 200, headers_in
        assert body == whole, headers_in
        assert "Content-Range" not in headers


# -- 4. content types ----------------------------------------------------------


LOGIN = json.dumps({"email": "sam@example.com", "password": "correct horse battery"}).encode()


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/xml", "application/x-www-form-urlencoded", "text/json", None],
)
async def test_a_body_that_is_not_said_to_be_json_is_415(
    start_app: AppFactory, content_type: str | None
) -> None:
    client = await start_app()
    await add_user(client, "sam@example.com", "supervisor")
    if content_type is None:
        resp = await client.post("/v1/auth/login", data=LOGIN, skip_auto_headers=["Content-Type"])
    else:
        resp = await client.post(
            "/v1/auth/login", data=LOGIN, headers={"Content-Type": content_type}
        )
    assert resp.status == 415
    error = (await resp.json())["error"]
    assert error["code"] == "unsupported_media_type"
    assert (content_type or "no Content-Type") in error["message"]
    assert "application/json" in error["message"]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
        "application/merge-patch+json",
    ],
)
async def test_json_types_are_accepted(start_app: AppFactory, content_type: str) -> None:
    client = await start_app()
    await add_user(client, "sam@example.com", "supervisor")
    resp = await client.post("/v1/auth/login", data=LOGIN, headers={"Content-Type": content_type})
    assert resp.status == 200, await resp.text()


async def test_requests_without_a_body_need_no_type(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    admin = await add_user(client, "adm@example.com", "admin")
    auth = {"Authorization": f"Bearer {admin}"}
    caller = new_caller(client)
    call_id = (await caller.dial("+15550101"))["call_id"]
    await caller.wait_for("connected")
    await caller.wait_for("recording", state="on")
    for action, state in (("pause", "paused"), ("resume", "on")):
        resp = await client.post(f"/v1/calls/{call_id}/recording/{action}", headers=auth)
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["recording"] == state
    # A PATCH of the wrong type is told which type a patch may have (RFC 5789).
    resp = await client.patch(
        "/v1/numbers/+15550101", headers={**auth, "Content-Type": "text/plain"}, data=b"{}"
    )
    assert resp.status == 415
    assert resp.headers["Accept-Patch"] == "application/json"
    await caller.hangup()
    resp = await client.post("/v1/privacy/retention/run", headers=auth)
    assert resp.status == 200, await resp.text()
    resp = await client.post("/v1/auth/logout", headers={**auth, "Content-Type": "text/plain"})
    assert resp.status == 204


# -- 5. aiohttp's own parser errors ----------------------------------------------

SECRET = "tok3n-that-must-not-be-logged"


@pytest.mark.parametrize(
    ("request_bytes", "reason"),
    [
        (b"GARBAGE\r\n\r\n", "Invalid method encountered"),
        (b"GET / HTTP/9.9\r\nHost: ivr\r\n\r\n", "Invalid HTTP version"),
        (
            f"GET /v1/me HTTP/1.1\r\nHost: ivr\r\nAuthorization: Bearer {SECRET}\x01\r\n\r\n",
            "Invalid header value char",
        ),
        (f"GET /v1/me HTTP/1.1\r\nHost: ivr\r\nAuthorization Bearer {SECRET}\r\n\r\n", "header"),
        (b"GET / HTTP/1.1\r\nHost: ivr\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n", "8190 bytes"),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: ivr\r\n\r\n", "8190 bytes"),
        (
            b"GET / HTTP/1.1\r\nHost: ivr\r\n"
            + b"".join(b"X-%d: 1\r\n" % i for i in range(200))
            + b"\r\n",
            "Too many headers",
        ),
        (
            b"POST /v1/auth/login HTTP/1.1\r\nHost: ivr\r\nContent-Length: x\r\n\r\n",
            "Content-Length",
        ),
    ],
)
async def test_a_request_aiohttp_cannot_parse_gets_a_json_error_and_one_log_line(
    start_app: AppFactory,
    caplog: pytest.LogCaptureFixture,
    request_bytes: bytes | str,
    reason: str,
) -> None:
    client = await start_app()
    raw = request_bytes.encode("latin-1") if isinstance(request_bytes, str) else request_bytes
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        got, closed = await raw_exchange(client, raw)
    status, headers, body = split_response(got)
    # aiohttp decides the status: 400 for every parser error it has.
    assert status == 400
    assert closed
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body)["error"]
    assert error["code"] == "bad_request"
    assert reason in error["message"]
    assert SECRET not in error["message"]
    records = [r for r in caplog.records if r.name.startswith(("ivr", "aiohttp.server"))]
    assert len(records) == 1, [r.getMessage() for r in records]
    record = records[0]
    assert record.name == "ivr.serving"
    assert record.exc_info is None
    assert reason in record.getMessage()
    assert "Traceback" not in caplog.text
    assert SECRET not in caplog.text
    # The server is unharmed: the next request on a new connection is answered.
    assert (await client.get("/v1/openapi.json")).status == 200


def test_the_parser_reason_keeps_the_words_and_drops_the_bytes() -> None:
    assert parser_reason("Invalid header value char:\n\n  b'X: secret\\x01'\n     ^") == (
        "Invalid header value char"
    )
    assert parser_reason("Got more than 8190 bytes when reading: b'aaaa'.") == (
        "Got more than 8190 bytes when reading"
    )
    assert parser_reason("Bad status line:\n  Invalid HTTP version:\n\n  b'GET / X'\n ^") == (
        "Bad status line: Invalid HTTP version"
    )
    assert parser_reason("Invalid HTTP header: 'Bearer secret'") == "Invalid HTTP header"
    assert parser_reason(None) == "malformed request"


IVR = [sys.executable, "-m", "ivr"]


@contextlib.contextmanager
def ivr_serve(
    tmp_path: Path, config_data: dict[str, Any], *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """A real ``ivr serve`` on a free loopback port; SIGTERM and a clean exit after."""
    config = write_yaml(tmp_path / "ivr.yaml", config_data)
    port = _free_port()
    data = str(tmp_path / "data")
    proc = subprocess.Popen(
        [
            *IVR,
            "serve",
            "--config",
            str(config),
            "--data",
            data,
            "--port",
            str(port),
            "--drain-s",
            "5",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        assert proc.stdout is not None
        line = ""
        deadline = time.monotonic() + 30
        while "listening on" not in line and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
        assert "listening on" in line, proc.stderr.read() if proc.stderr else ""
        yield port, proc
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def http_exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """One raw request on a fresh blocking socket; the parsed answer (read to the close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        got = b""
        while chunk := s.recv(65536):
            got += chunk
    return split_response(got)


def test_ivr_serve_answers_a_malformed_request_as_json_with_one_log_line(
    tmp_path: Path, config_data: dict[str, Any]
) -> None:
    with ivr_serve(tmp_path, config_data) as (port, proc):
        raw = f"GET /v1/me HTTP/1.1\r\nHost: ivr\r\nAuthorization: Bearer {SECRET}\x01\r\n\r\n"
        status, headers, body = http_exchange(port, raw.encode("latin-1"))
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body)["error"]["code"] == "bad_request"
    stderr = proc.stderr.read() if proc.stderr else ""
    lines = [ln for ln in stderr.splitlines() if "malformed" in ln]
    assert len(lines) == 1, stderr
    assert "Invalid header value char" in lines[0]
    assert "Traceback" not in stderr
    assert SECRET not in stderr


# -- 6. the dummy hash -------------------------------------------------------------


async def test_the_dummy_hash_is_ready_at_start_up_so_the_first_unknown_login_only_verifies(
    start_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Count argon2's own work (the library, at the edge; the calls go through).
    calls: list[str] = []
    real_hash, real_verify = PasswordHasher.hash, PasswordHasher.verify

    def counted_hash(self: PasswordHasher, password: str | bytes, **kw: Any) -> str:
        calls.append("hash")
        return real_hash(self, password, **kw)

    def counted_verify(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        calls.append("verify")
        return bool(real_verify(self, hash, password))

    monkeypatch.setattr(PasswordHasher, "hash", counted_hash)
    monkeypatch.setattr(PasswordHasher, "verify", counted_verify)
    client = await start_app()
    auth = client.app[authenticator_key]
    # Made at start-up with the server's own cost, before any login.
    assert calls == ["hash"]
    params = extract_parameters(auth.dummy_hash)
    assert (params.time_cost, params.memory_cost, params.parallelism) == (
        CHEAP.time_cost,
        CHEAP.memory_cost,
        CHEAP.parallelism,
    )
    for n in range(1, 4):
        calls.clear()
        resp = await client.post(
            "/v1/auth/login", json={"email": f"nobody{n}@example.com", "password": "guess"}
        )
        assert resp.status == 401
        # Each unknown-e-mail login, the first one too, is exactly one verify.
        assert calls == ["verify"], n


# -- 7. who may read /metrics ----------------------------------------------------

METRICS_TOKEN = "m3trics-t0ken-0123456789abcdef"


def documented_routes(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops if m != "parameters"}


WEBSOCKET_PATHS = ("/v1/call", "/v1/agent", "/v1/internal/bridge")
"""The WebSocket endpoints (docs/protocol.md, docs/nodes.md): not in the OpenAPI document."""


def served_routes(app: web.Application) -> set[tuple[str, str]]:
    out = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = str(info.get("path") or info.get("formatter"))
        api = path.startswith("/v1/") and path not in WEBSOCKET_PATHS
        if route.method not in ("HEAD", "*") and (api or path == "/metrics"):
            out.add((route.method, path))
    return out


async def test_metrics_stay_open_on_the_main_port_by_default(start_app: AppFactory) -> None:
    client = await start_app()
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert "ivr_calls_active" in await resp.text()
    doc = await (await client.get("/v1/openapi.json")).json()
    assert doc["paths"]["/metrics"]["get"]["security"] == []


async def test_metrics_with_a_token_need_that_bearer_token(
    start_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        client = await start_app(metrics_token=METRICS_TOKEN)
        sup = await add_user(client, "sup@example.com", "supervisor")
        for headers in (
            {},
            {"Authorization": "Bearer nope"},
            {"Authorization": f"Bearer {METRICS_TOKEN}x"},
            {"Authorization": f"Bearer {sup}"},  # a user's token is not the metrics token
            {"Authorization": f"Basic {METRICS_TOKEN}"},
        ):
            resp = await client.get("/metrics", headers=headers)
            assert resp.status == 401, headers
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
            error = (await resp.json())["error"]
            assert error["code"] == "unauthorized"
            assert METRICS_TOKEN not in error["message"]
        resp = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert resp.status == 200
        assert "ivr_clock_tick_lateness_seconds_bucket" in await resp.text()
    assert METRICS_TOKEN not in caplog.text
    assert METRICS_TOKEN not in repr(client.app[settings_key])
    doc = await (await client.get("/v1/openapi.json")).json()
    op = doc["paths"]["/metrics"]["get"]
    assert op["security"] == [{"metrics_token": []}]
    assert "401" in op["responses"]
    assert documented_routes(doc) == served_routes(client.app)


async def test_metrics_on_a_listener_of_their_own_and_not_on_the_main_port(
    start_app: AppFactory,
) -> None:
    client = await start_app(metrics_port=0, metrics_token=METRICS_TOKEN)
    resp = await client.get("/metrics")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
    [(host, port)] = metrics_addresses(client.app)
    assert host == "127.0.0.1"
    assert port not in (0, client.server.port)
    auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    async with aiohttp.ClientSession(f"http://{host}:{port}") as side:
        async with side.get("/metrics", headers=auth) as got:
            assert got.status == 200
            assert "ivr_calls_active" in await got.text()
        async with side.get("/metrics") as got:
            assert got.status == 401
        async with side.get("/v1/openapi.json", headers=auth) as got:
            assert got.status == 404  # only /metrics is there
    doc = await (await client.get("/v1/openapi.json")).json()
    assert "/metrics" not in doc["paths"]
    assert documented_routes(doc) == served_routes(client.app)


def test_ivr_serve_takes_the_metrics_token_from_a_file_and_a_port_of_its_own(
    tmp_path: Path, config_data: dict[str, Any]
) -> None:
    token_file = tmp_path / "metrics.token"
    token_file.write_text(METRICS_TOKEN + "\n")
    metrics_port = _free_port()
    args = ("--metrics-token-file", str(token_file), "--metrics-port", str(metrics_port))
    with ivr_serve(tmp_path, config_data, *args) as (port, proc):
        get = b"GET /metrics HTTP/1.1\r\nHost: ivr\r\nConnection: close\r\n"
        assert http_exchange(port, get + b"\r\n")[0] == 404
        assert http_exchange(metrics_port, get + b"\r\n")[0] == 401
        authed = get + f"Authorization: Bearer {METRICS_TOKEN}\r\n\r\n".encode()
        status, _, body = http_exchange(metrics_port, authed)
        assert status == 200
        assert b"ivr_calls_active" in body
    out = (proc.stdout.read() if proc.stdout else "") + (proc.stderr.read() if proc.stderr else "")
    assert METRICS_TOKEN not in out


def test_ivr_serve_takes_the_metrics_token_from_the_environment(
    tmp_path: Path, config_data: dict[str, Any]
) -> None:
    with ivr_serve(tmp_path, config_data, env={"IVR_METRICS_TOKEN": METRICS_TOKEN}) as (port, _):
        get = b"GET /metrics HTTP/1.1\r\nHost: ivr\r\nConnection: close\r\n"
        assert http_exchange(port, get + b"\r\n")[0] == 401
        authed = get + f"Authorization: Bearer {METRICS_TOKEN}\r\n\r\n".encode()
        assert http_exchange(port, authed)[0] == 200


@pytest.mark.parametrize(
    ("token", "args", "message"),
    [
        ("short", (), "at least 16 characters"),
        ("with a space in it, long enough", (), "printable ASCII without spaces"),
        (None, ("--metrics-host", "127.0.0.1"), "--metrics-host needs --metrics-port"),
    ],
)
def test_ivr_serve_refuses_a_bad_metrics_setting(
    tmp_path: Path, token: str | None, args: tuple[str, ...], message: str
) -> None:
    env = {**os.environ, "IVR_METRICS_TOKEN": token} if token else dict(os.environ)
    if token is None:
        env.pop("IVR_METRICS_TOKEN", None)
    done = subprocess.run(
        [*IVR, "serve", "--data", str(tmp_path / "d"), "--port", "1", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert message in done.stderr
    if token:
        assert token not in done.stderr


# -- 8. the WebSocket Origin rule ----------------------------------------------------


def upgrade(origin: str | None, **more: str) -> dict[str, str]:
    """The headers of a WebSocket handshake (RFC 6455 section 4.1), from ``origin``."""
    headers = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        **more,
    }
    if origin is not None:
        headers["Origin"] = origin
    return headers


def with_origins(config_data: dict[str, Any], *origins: str) -> dict[str, Any]:
    return {**config_data, "http": {"allowed_origins": list(origins)}}


@pytest.mark.parametrize("path", ["/v1/call", "/v1/agent"])
async def test_a_foreign_origin_is_refused_before_the_upgrade(
    start_app: AppFactory, config_data: dict[str, Any], path: str
) -> None:
    client = await start_app(with_origins(config_data, "https://app.example.com"))
    sup = await add_user(client, "sup@example.com", "supervisor")
    port = client.server.port
    assert port is not None
    for origin in (
        "https://evil.example",
        "https://app.example.com.evil.example",
        "http://app.example.com",  # the allowed host, another scheme
        f"http://127.0.0.1:{port + 1}",  # this host, another port
        f"https://127.0.0.1:{port}",  # this host and port, another scheme
        "null",  # a sandboxed frame or a local file
        "not an origin",
    ):
        resp = await client.get(path, headers=upgrade(origin))
        assert resp.status == 403, origin
        error = (await resp.json())["error"]
        assert error["code"] == "forbidden"
        assert error["origin"] == origin
        assert repr(origin) in error["message"]
        assert "Upgrade" not in resp.headers.get("Connection", "")
    # Nothing happened behind the refusals.
    calls = await (await client.get("/v1/calls", headers={"Authorization": f"Bearer {sup}"})).json()
    assert calls["items"] == []


async def test_the_own_origin_an_allowed_one_and_no_origin_may_open_both_endpoints(
    start_app: AppFactory, config_data: dict[str, Any]
) -> None:
    client = await start_app(with_origins(config_data, "https://App.Example.com:443"))
    agent_token = await add_user(client, "ana@example.com", "agent", ("desk",))
    own = f"http://127.0.0.1:{client.server.port}"
    for origin in (None, own, "https://app.example.com", "HTTPS://APP.EXAMPLE.COM:443"):
        call = await client.ws_connect("/v1/call", origin=origin)
        await call.send_json(
            {"type": "dial", "to": "+15550101", "from": "+15557654321"}
            | {"codec": "pcm_s16le", "rate": 8000}
        )
        assert (await call.receive_json(timeout=10))["type"] == "answered", origin
        await call.close()
        agent = await client.ws_connect("/v1/agent", origin=origin)
        await agent.send_json({"type": "login", "token": agent_token})
        assert (await agent.receive_json(timeout=10))["type"] == "logged_in", origin
        await agent.close()


@pytest.mark.parametrize(
    "proxy", [{"X-Forwarded-Proto": "https"}, {"Forwarded": "for=192.0.2.1;proto=https"}]
)
async def test_behind_a_tls_proxy_the_own_origin_is_https(
    start_app: AppFactory, proxy: dict[str, str]
) -> None:
    client = await start_app()
    https_own = f"https://127.0.0.1:{client.server.port}"
    assert (await client.get("/v1/call", headers=upgrade(https_own))).status == 403
    ws = await client.ws_connect("/v1/call", origin=https_own, headers=proxy)
    await ws.close()
    # The proxy's scheme names the own origin; the plain one is now another.
    plain = f"http://127.0.0.1:{client.server.port}"
    assert (await client.get("/v1/call", headers=upgrade(plain, **proxy))).status == 403


def test_allowed_origins_are_checked_like_the_rest_of_the_config(
    tmp_path: Path, config_data: dict[str, Any]
) -> None:
    data = with_origins(
        config_data,
        "https://ok.example.com",
        "https://ok.example.com/",
        "ftp://files.example.com",
        "app.example.com",
        "https://OK.example.com:443",
    )
    with pytest.raises(InvalidConfig) as caught:
        build_config(data, tmp_path)
    problems = {p.path: p.message for p in caught.value.problems}
    assert set(problems) == {
        "http.allowed_origins.1",
        "http.allowed_origins.2",
        "http.allowed_origins.3",
    }
    assert all("not an origin" in m and "scheme://host[:port]" in m for m in problems.values())
    data["http"] = {"allowed_origins": ["https://OK.example.com:443", "http://h:8080"]}
    assert build_config(data, tmp_path).http.allowed_origins == [
        "https://ok.example.com",
        "http://h:8080",
    ]
    data["http"] = {"allowed_origin": ["https://ok.example.com"]}
    with pytest.raises(InvalidConfig) as caught:
        build_config(data, tmp_path)
    assert [(p.path, p.message) for p in caught.value.problems] == [
        ("http.allowed_origin", "unknown key")
    ]
