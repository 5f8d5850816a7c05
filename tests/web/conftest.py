"""Browser tests: the real app on loopback, driven in Debian's Chromium by Playwright.

Chromium is launched from ``/usr/bin/chromium`` (or ``$IVR_CHROMIUM``) with a
fake microphone that plays a WAV made here, so what a page "says" is known
sample by sample. A missing Chromium or Playwright fails the tests with a
message saying what to install; nothing is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from ivr.access.auth import CHEAP
from ivr.server.app import create_app
from ivr.server.keys import Settings
from tests.conftest import AppServer, build_config

try:
    from playwright.async_api import Browser, BrowserContext, Page, Playwright, async_playwright
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError(
        "the browser tests need the 'playwright' Python package: "
        ".venv/bin/pip install playwright (no browser download is needed: "
        "the tests use Debian's chromium)"
    ) from exc

CHROMIUM = Path(os.environ.get("IVR_CHROMIUM", "/usr/bin/chromium"))
MIC_RATE = 48000
MIC_SECONDS = 40
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
PASSWORD = "correct horse battery"  # tests.conftest.add_user's default

Client = TestClient[web.Request, web.Application]


def mic_signal(
    seed: int, seconds: int = MIC_SECONDS, rate: int = MIC_RATE
) -> npt.NDArray[np.int16]:
    """Band-limited noise (300-3000 Hz): inside the telephone band, so it survives 8 kHz,
    and never periodic, so a stretch of it can be found again in a recording."""
    rng = np.random.default_rng(seed)
    n = seconds * rate
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / rate)
    spectrum[(freqs < 300) | (freqs > 3000)] = 0
    x = np.fft.irfft(spectrum, n)
    x *= 0.25 * 32767 / np.max(np.abs(x))
    return x.astype(np.int16)


def write_wav(path: Path, pcm: npt.NDArray[np.int16], rate: int = MIC_RATE) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
    return path


@dataclass(frozen=True)
class Mic:
    """A fake microphone: the WAV Chromium plays, and its samples."""

    path: Path
    pcm: npt.NDArray[np.int16]


@pytest.fixture(scope="session")
def mics(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Mic]:
    folder = tmp_path_factory.mktemp("mics")
    out = {}
    for name, seed in (("caller", 11), ("agent", 22)):
        pcm = mic_signal(seed)
        out[name] = Mic(write_wav(folder / f"{name}.wav", pcm), pcm)
    return out


def chromium_args(wav: Path) -> list[str]:
    return [
        "--no-sandbox",
        "--disable-gpu",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}%noloop",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
    ]


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium; the tests fail (never skip) without it."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"Chromium is missing at {CHROMIUM}: the browser tests need Debian's chromium "
            "(apt-get install -y chromium), or IVR_CHROMIUM set to a Chromium binary",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture
async def playwright(chromium: Path) -> AsyncIterator[Playwright]:
    async with async_playwright() as p:
        yield p


Launch = Callable[..., Awaitable[Browser]]


@pytest.fixture
async def launch(playwright: Playwright, mics: dict[str, Mic]) -> AsyncIterator[Launch]:
    """Start a headless Chromium whose microphone plays ``mics[mic]``."""
    browsers: list[Browser] = []

    async def start(mic: str = "caller") -> Browser:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=chromium_args(mics[mic].path)
        )
        browsers.append(browser)
        return browser

    yield start
    for b in browsers:
        with contextlib.suppress(Exception):
            await b.close()


NewPage = Callable[..., Awaitable[Page]]


@pytest.fixture
async def new_page(launch: Launch) -> AsyncIterator[NewPage]:
    """A page in its own context (its own sessionStorage), at desktop size unless told."""
    browsers: dict[str, Browser] = {}
    contexts: list[BrowserContext] = []

    async def make(mic: str = "caller", viewport: dict[str, int] | None = None) -> Page:
        if mic not in browsers:
            browsers[mic] = await launch(mic)
        context = await browsers[mic].new_context(viewport=viewport or DESKTOP)  # type: ignore[arg-type]
        contexts.append(context)
        page = await context.new_page()
        page.set_default_timeout(10_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page_errors[id(page)] = errors
        return page

    yield make
    for c in contexts:
        with contextlib.suppress(Exception):
            await c.close()


page_errors: dict[int, list[str]] = {}


def js_errors(page: Page) -> list[str]:
    """Uncaught exceptions the page has thrown so far."""
    return page_errors.get(id(page), [])


def web_routes_wired(app: web.Application) -> bool:
    return any(r.get_info().get("path") == "/qa" for r in app.router.resources())


Serve = Callable[..., Awaitable[Client]]


@pytest.fixture
def serve(aiohttp_client: Any, tmp_path: Path, config_data: dict[str, Any]) -> Serve:
    """The real app with the web pages, on loopback (tests/conftest.py's config)."""

    async def start(data: dict[str, Any] | None = None) -> Client:
        import ivr.web

        settings = Settings(
            data_dir=tmp_path / "data",
            config=build_config(data or config_data, tmp_path),
            hash_params=CHEAP,
        )
        app = create_app(settings)
        if not web_routes_wired(app):
            ivr.web.add_routes(app)
        client: Client = await aiohttp_client(AppServer(app))
        return client

    return start


def url(client: Client, path: str = "/") -> str:
    return f"http://{client.server.host}:{client.server.port}{path}"


async def screenshot(page: Page, name: str, full_page: bool = True) -> Path:
    """Save a screenshot under artifacts/screenshots/ (git-ignored, kept by CI)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    width = page.viewport_size["width"] if page.viewport_size else 0
    path = ARTIFACTS / f"{name}-{width}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    return path


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------- recordings and signals


async def recording_audio(
    client: Client, token: str, recording_id: str
) -> tuple[int, npt.NDArray[np.int16], npt.NDArray[np.int16]]:
    """A recording's rate and its two channels (caller left, agent right), through the API."""
    import io

    resp = await client.get(
        f"/v1/recordings/{recording_id}/audio", headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status == 200, await resp.text()
    with wave.open(io.BytesIO(await resp.read())) as w:
        assert w.getnchannels() == 2
        rate = w.getframerate()
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    return rate, frames[:, 0].copy(), frames[:, 1].copy()


def best_match(
    chunk: npt.NDArray[np.floating],
    reference: npt.NDArray[np.floating],
    spectra: dict[int, npt.NDArray[np.complexfloating]] | None = None,
) -> float:
    """The highest normalised correlation of ``chunk`` with any stretch of ``reference``.

    ``spectra`` caches the reference's FFT by size, for many chunks against one reference.
    """
    n = len(chunk)
    size = 1 << int(np.ceil(np.log2(len(reference) + n)))
    cache = {} if spectra is None else spectra
    if size not in cache:
        cache[size] = np.fft.rfft(reference, size)
    corr = np.fft.irfft(cache[size] * np.conj(np.fft.rfft(chunk, size)), size)
    corr = corr[: len(reference) - n + 1]
    # the energy of every stretch of the reference, for the normalisation
    cumulative = np.concatenate(([0.0], np.cumsum(reference.astype(np.float64) ** 2)))
    energy = cumulative[n:] - cumulative[:-n]
    norm = np.sqrt(energy * float(np.sum(chunk.astype(np.float64) ** 2))) + 1e-9
    return float(np.max(corr / norm))


def correlation_by_chunk(
    channel: npt.NDArray[np.int16],
    mic: npt.NDArray[np.int16],
    rate: int,
    chunk_s: float = 0.1,
    search_s: float = 20.0,
) -> list[float]:
    """How well each non-silent tenth of a second of ``channel`` matches the microphone's WAV.

    The WAV (its first ``search_s`` seconds: no test call lasts longer) is
    brought to the recording's rate with the project's own resampler. Each
    chunk is matched on its own, because the audio path may skip or insert a
    few milliseconds now and then (the server's jitter buffer drops or pads a
    frame when its clock runs late on a busy machine; Chromium's fake device
    skips a buffer or two as it starts), which shifts what follows. The exact
    zeros a recording holds where no audio came are left out of each chunk.
    A tenth of a second of this noise matches a wrong stretch of it at about
    0.2 at best, and the right one at 1.0.
    """
    from media.resample import resample

    reference = resample(mic[: int(search_s * MIC_RATE)], MIC_RATE, rate).astype(np.float64)
    n = int(rate * chunk_s)
    spectra: dict[int, npt.NDArray[np.complexfloating]] = {}
    out = []
    for start in range(0, len(channel) - n + 1, n):
        chunk = channel[start : start + n].astype(np.float64)
        sound = np.flatnonzero(chunk)
        if len(sound) < n // 2 or np.sqrt(np.mean(chunk**2)) < 300:
            continue  # silence: before the microphone started, or after it
        out.append(best_match(chunk[sound[0] : sound[-1] + 1], reference, spectra))
    return out


def matches(scores: list[float], seconds: float, chunk_s: float = 0.1) -> bool:
    """At least ``seconds`` of audio, and four chunks in five match it (> 0.9)."""
    good = sum(s > 0.9 for s in scores)
    return len(scores) * chunk_s >= seconds and good >= 0.8 * len(scores)


# ---------------------------------------------------------------- a network that can fail


class TcpProxy:
    """A loopback TCP relay in front of the app; ``cut()`` drops every connection at once,
    as a lost network would (no close handshake, no WebSocket close frame)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        for w in self.writers:
            transport = w.transport
            transport.abort()

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


# ---------------------------------------------------------------- calls placed from Python


async def bot_call(client: Client, new_caller: Callable[..., Any], frm: str) -> str:
    """A call to +15550100 that presses 1 and talks to a bot for 0.4 s; its recording id."""
    from tests.conftest import noise_frames

    caller = new_caller(client)
    await caller.dial(frm=frm)
    await caller.wait_for("prompt", event="start", node="consent")
    await caller.send({"type": "dtmf", "digits": "1"})
    await caller.wait_for("connected")
    caller.start_audio(noise_frames(20))
    await asyncio.sleep(0.4)
    hangup = await caller.hangup()
    await caller.closed_wait()
    return str(hangup["stats"]["recording_id"])


async def desk_call(
    client: Client, new_caller: Callable[..., Any], agent_token: str, frm: str
) -> str:
    """A call to +15550102 that a person answers on /v1/agent; its recording id."""
    from tests.agent_helpers import signed_in_agent
    from tests.conftest import noise_frames

    agent = await signed_in_agent(client, new_caller, agent_token)
    caller = new_caller(client)
    await caller.dial(to="+15550102", frm=frm)
    await caller.wait_for("prompt", event="start", node="consent")
    await caller.send({"type": "dtmf", "digits": "1"})
    offer = await agent.wait_for("offer")
    await agent.send({"type": "answer", "call_id": offer["call_id"]})
    await caller.wait_for("connected")
    caller.start_audio(noise_frames(60, seed=3))
    agent.start_audio(noise_frames(60, seed=4))
    await asyncio.sleep(1.0)
    await agent.stop_audio()
    hangup = await caller.hangup()
    await caller.closed_wait()
    await agent.close()
    return str(hangup["stats"]["recording_id"])
