"""Shared fixtures: small real prompt files, configs, a running app, and callers.

Prompts here are short tones written as real WAV files, so a call walks its
whole flow in well under a second of real audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import yaml
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from ivr.access.auth import CHEAP
from ivr.config import Config, parse_config
from ivr.server import serving
from ivr.server.app import create_app
from ivr.server.keys import Settings
from ivr.store import Store
from ivr.store.keyring import Keyring
from media.frame import Pcm
from media.sealed import open_audio, read_audio
from media.wavfile import write_mono
from tests.postgres import BACKENDS, database_for

PROMPT_MS = {"notice": 200, "menu": 300, "hold": 200, "greeting": 100, "bye": 100, "welcome": 100}
PROMPT_HZ = {"notice": 440, "menu": 550, "hold": 330, "greeting": 660, "bye": 220, "welcome": 770}


def write_tone(path: Path, freq: float, ms: int, rate: int = 8000) -> None:
    t = np.arange(rate * ms // 1000) / rate
    write_mono(path, (8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16), rate)


@pytest.fixture(scope="session")
def prompts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("prompts")
    for name, ms in PROMPT_MS.items():
        write_tone(folder / f"{name}.wav", PROMPT_HZ[name], ms)
    return folder


def consent_flow(
    team: str = "support", menu_timeout_s: float = 0.3, retries: int = 1
) -> dict[str, Any]:
    return {
        "start": "notice",
        "nodes": {
            "notice": {
                "type": "message",
                "prompt": "notice",
                "notice": ["recording", "ai"],
                "next": "consent",
            },
            "consent": {
                "type": "menu",
                "prompt": "menu",
                "options": {
                    "1": {"next": "recorded", "consent": "granted"},
                    "2": {"next": "private", "consent": "refused"},
                },
                "timeout_s": menu_timeout_s,
                "retries": retries,
                "on_timeout": "private",
                "on_invalid": "consent",
            },
            "recorded": {
                "type": "ring",
                "team": team,
                "record": True,
                "timeout_s": 5,
                "on_no_answer": "bye",
            },
            "private": {
                "type": "ring",
                "team": team,
                "record": False,
                "timeout_s": 5,
                "on_no_answer": "bye",
            },
            "bye": {"type": "hangup", "prompt": "bye"},
        },
    }


def base_config(prompts: Path) -> dict[str, Any]:
    number = {"recording": True, "transcription": True, "record_percent": 100, "retention_days": 90}
    return {
        "prompts_dir": str(prompts),
        "bots": {"answer_delay_s": 0.04, "greeting": "greeting", "max_call_s": 30},
        "numbers": {
            "+15550100": {**number, "name": "Support", "flow": "consent", "consent_mode": "opt_in"},
            "+15550101": {
                **number,
                "name": "Sales",
                "flow": "sales",
                "consent_mode": "notice",
                "transcription": False,  # the sales flow gives no AI notice
            },
            "+15550102": {**number, "name": "Desk", "flow": "desk", "consent_mode": "opt_in"},
            "+15550199": {
                **number,
                "name": "Private",
                "flow": "sales",
                "recording": False,
                "consent_mode": "notice",
            },
        },
        "teams": {"support": {"bots": 60}, "desk": {"bots": 0}},
        "flows": {
            "consent": consent_flow(),
            "desk": consent_flow("desk"),
            "sales": {
                "start": "notice",
                "nodes": {
                    "notice": {
                        "type": "message",
                        "prompt": "notice",
                        "notice": ["recording"],
                        "next": "line",
                    },
                    "line": {
                        "type": "ring",
                        "team": "support",
                        "record": True,
                        "timeout_s": 5,
                        "on_no_answer": "bye",
                    },
                    "bye": {"type": "hangup"},
                },
            },
        },
    }


def build_config(data: dict[str, Any], base: Path) -> Config:
    return parse_config(data, "test-config.yaml", base)


@pytest.fixture
def config_data(prompts_dir: Path) -> dict[str, Any]:
    return base_config(prompts_dir)


AppFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


class AppServer(TestServer):
    """aiohttp's test server, running the app through ``ivr serve``'s own runner."""

    async def _make_runner(self, **kwargs: Any) -> web.BaseRunner:
        return serving.AppRunner(self.app, **kwargs)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgresql``: a test that takes it runs once on each."""
    return str(request.param)


@pytest.fixture
async def database(backend: str) -> AsyncIterator[str | None]:
    """The ``database`` a :class:`ivr.store.Store` of ``backend`` takes (fresh each test)."""
    async with database_for(backend) as dsn:
        yield dsn


SERVER_BACKEND_ENV = "IVR_TEST_SERVER_BACKEND"
"""``postgresql``: the servers tests start keep their store in PostgreSQL (default ``sqlite``)."""


@pytest.fixture
async def server_database() -> AsyncIterator[str | None]:
    """The ``database`` of the servers a test starts: None (SQLite in their data folder),
    or with ``IVR_TEST_SERVER_BACKEND=postgresql`` a fresh PostgreSQL schema (one per
    test, so a restarted server finds its data)."""
    async with database_for(os.environ.get(SERVER_BACKEND_ENV) or "sqlite") as dsn:
        yield dsn


@pytest.fixture
def start_app(
    server_database: str | None, aiohttp_client: Any, tmp_path: Path, config_data: dict[str, Any]
) -> AppFactory:
    """Start the real app on loopback; returns a test client.

    ``server_database`` comes first: set up before the client, so dropped after
    the servers have stopped."""

    async def start(
        data: dict[str, Any] | None = None, data_dir: Path | None = None, **more: Any
    ) -> TestClient[web.Request, web.Application]:
        """``more``: other :class:`ivr.server.app.Settings` fields (the /metrics ones)."""
        config = build_config(data or config_data, tmp_path)
        more.setdefault("database", server_database)
        settings = Settings(
            data_dir=data_dir or tmp_path / "data", config=config, hash_params=CHEAP, **more
        )
        client: TestClient[web.Request, web.Application] = await aiohttp_client(
            AppServer(create_app(settings))
        )
        return client

    return start


def noise_frames(count: int, rate: int = 8000, seed: int = 1) -> list[Pcm]:
    """Distinct, never-silent frames, so each can be found again in a recording."""
    rng = np.random.default_rng(seed)
    n = rate // 50
    out = []
    for _ in range(count):
        f = rng.integers(-12000, 12000, n, dtype=np.int16)
        f[f == 0] = 1
        out.append(f)
    return out


class Caller:
    """A test caller on ``/v1/call``: records every message and counts audio frames."""

    def __init__(
        self, client: TestClient[web.Request, web.Application], path: str = "/v1/call"
    ) -> None:
        self.client = client
        self.path = path
        self.messages: list[dict[str, Any]] = []
        self.frames: list[bytes] = []
        self.close_code: int | None = None
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.sent_at: list[float] = []

    async def connect(self) -> None:
        self._ws = await self.client.ws_connect(self.path)
        self._reader = asyncio.create_task(self._read())

    async def dial(
        self,
        to: str = "+15550100",
        frm: str = "+15557654321",
        codec: str = "pcm_s16le",
        rate: int = 8000,
        **extra: Any,
    ) -> dict[str, Any]:
        await self.connect()
        await self.send(
            {"type": "dial", "to": to, "from": frm, "codec": codec, "rate": rate, **extra}
        )
        return await self.wait_for("answered")

    async def send(self, message: dict[str, Any] | str) -> None:
        await self._ws.send_str(message if isinstance(message, str) else json.dumps(message))

    async def send_bytes(self, data: bytes) -> None:
        await self._ws.send_bytes(data)

    async def _read(self) -> None:
        async for msg in self._ws:
            if msg.type == WSMsgType.TEXT:
                self.messages.append(json.loads(msg.data))
            elif msg.type == WSMsgType.BINARY:
                self.frames.append(msg.data)
            self._changed.set()
        self.close_code = self._ws.close_code
        self._changed.set()

    @property
    def closed(self) -> bool:
        return self._reader is not None and self._reader.done()

    async def wait_for(
        self, kind: str, timeout: float = 10.0, nth: int = 1, **fields: Any
    ) -> dict[str, Any]:
        """The ``nth`` message of ``kind`` (matching ``fields``), waiting for it if need be."""
        deadline = time.monotonic() + timeout
        while True:
            found = [
                m
                for m in self.messages
                if m.get("type") == kind and all(m.get(k) == v for k, v in fields.items())
            ]
            if len(found) >= nth:
                return found[nth - 1]
            if self.closed:
                raise AssertionError(f"closed before {kind} {fields}: {self.messages}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {kind} {fields} in {timeout}s: {self.messages}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    def start_audio(self, frames: list[Pcm], lead: int = 0) -> None:
        """Send ``frames`` at real-time pace (one per 20 ms against a start time).

        ``lead``: send that many frames ahead at once, as a client with its own
        buffer does, so the server's jitter buffer holds them as a cushion.
        """

        async def run() -> None:
            start = time.monotonic()
            for i, f in enumerate(frames):
                delay = start + (i - lead) * 0.02 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self._ws.closed:
                    return
                self.sent_at.append(time.monotonic())
                await self._ws.send_bytes(f.astype("<i2").tobytes())

        self._sender = asyncio.create_task(run())

    async def audio_sent(self) -> None:
        """Wait until every frame given to :meth:`start_audio` has been sent."""
        if self._sender is not None:
            await asyncio.shield(self._sender)

    async def stop_audio(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender

    async def hangup(self) -> dict[str, Any]:
        await self.stop_audio()
        await self.send({"type": "hangup"})
        return await self.wait_for("hangup")

    async def closed_wait(self, timeout: float = 10.0) -> None:
        assert self._reader is not None
        await asyncio.wait_for(asyncio.shield(self._reader), timeout)

    async def close(self) -> None:
        await self.stop_audio()
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader


@pytest.fixture
def callers() -> list[Caller]:
    return []


@pytest.fixture
async def new_caller(callers: list[Caller]) -> AsyncIterator[Callable[..., Caller]]:
    def make(client: TestClient[web.Request, web.Application], path: str = "/v1/call") -> Caller:
        c = Caller(client, path)
        callers.append(c)
        return c

    yield make
    for c in callers:
        await c.close()


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


async def add_user(
    client: TestClient[web.Request, web.Application],
    email: str,
    role: str,
    teams: tuple[str, ...] = (),
    password: str = "correct horse battery",
) -> str:
    """Create a user in the app's store and return a bearer token for them."""
    from ivr.access.auth import hash_password
    from ivr.server.keys import store_key

    store = client.app[store_key]
    hashed = await hash_password(password, CHEAP)
    await store.users.add(
        email,
        email.split("@")[0].title(),
        role,  # type: ignore[arg-type]
        hashed,
        teams,
    )
    resp = await client.post("/v1/auth/login", json={"email": email, "password": password})
    assert resp.status == 200, await resp.text()
    token: str = (await resp.json())["token"]
    return token


def read_recording(store: Store, rec: Any) -> tuple[npt.NDArray[np.int16], int]:
    """A recording's samples ``(frames, channels)`` and rate, through the store's reader.

    Recordings are sealed at rest (media.sealed): the file is not a WAV, so a
    test reads it as the API does, decrypted with its data key.
    """
    with store.recording_audio(rec.path) as audio:
        return read_audio(audio)


def read_recording_file(path: Path, keys: Path) -> tuple[npt.NDArray[np.int16], int]:
    """A recording file's samples and rate, its data key from the key folder ``keys``.

    For tests of a server in another process: its default key folder is
    ``<data>-keys`` beside its data folder (a simulated switch's: ``<data>/keys``).
    """
    with open_audio(path, Keyring(keys).key) as audio:
        return read_audio(audio)
