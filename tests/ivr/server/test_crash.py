"""A recording survives a SIGKILL of the real server: at most the last second is lost."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
import wave
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import websockets

from media.wavfile import RecordingWriter, repair_header
from tests.conftest import noise_frames, read_recording_file, write_yaml
from tests.ivr.test_cli import _free_port

IVR = [sys.executable, "-m", "ivr"]


def _start(config: Path, data: Path, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            *IVR,
            "serve",
            "--config",
            str(config),
            "--data",
            str(data),
            "--port",
            str(port),
            "--drain-s",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if "listening on" in proc.stdout.readline():
            return proc
    proc.kill()
    raise AssertionError("the server did not start")


async def _talk_until_killed(
    port: int, proc: subprocess.Popen[str], talk_s: float
) -> tuple[int, float]:
    """Call, stream noise, SIGKILL the server after ``talk_s`` of recording."""
    frames = [f.astype("<i2").tobytes() for f in noise_frames(400, seed=5)]
    sent = 0
    async with websockets.connect(f"ws://127.0.0.1:{port}/v1/call", close_timeout=0.5) as ws:
        await ws.send(
            json.dumps(
                {
                    "type": "dial",
                    "to": "+15550101",
                    "from": "+15557654321",
                    "codec": "pcm_s16le",
                    "rate": 8000,
                }
            )
        )
        while True:
            m = await ws.recv()
            if isinstance(m, str) and json.loads(m).get("state") == "on":
                break
        start = time.monotonic()
        try:
            for i, f in enumerate(frames):
                delay = start + i * 0.02 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if time.monotonic() - start >= talk_s and proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    killed_after = time.monotonic() - start
                    proc.wait(10)
                    return sent, killed_after
                await ws.send(f)
                sent += 1
        except websockets.ConnectionClosed:
            pass
    raise AssertionError("the call ended before the kill")


def _served_recording(port: int, email: str, password: str) -> bytes:
    """The one recording's audio through the API of the server at ``port``."""
    base = f"http://127.0.0.1:{port}"
    login = urllib.request.Request(
        f"{base}/v1/auth/login",
        data=json.dumps({"email": email, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(login, timeout=10) as resp:
        token = json.load(resp)["token"]
    auth = {"Authorization": f"Bearer {token}"}
    with urllib.request.urlopen(
        urllib.request.Request(f"{base}/v1/recordings", headers=auth), timeout=10
    ) as resp:
        (item,) = json.load(resp)["items"]
    assert item["status"] == "interrupted"
    url = f"{base}/v1/recordings/{item['id']}/audio"
    with urllib.request.urlopen(urllib.request.Request(url, headers=auth), timeout=10) as resp:
        body: bytes = resp.read()
    return body


def test_sigkill_mid_call_leaves_a_readable_recording(
    tmp_path: Path, config_data: dict[str, Any]
) -> None:
    config = write_yaml(tmp_path / "ivr.yaml", config_data)
    data = tmp_path / "data"
    port = _free_port()
    proc = _start(config, data, port)
    try:
        sent, killed_after = asyncio.run(_talk_until_killed(port, proc, talk_s=2.5))
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    partials = list((data / "recordings").rglob("*.partial"))
    assert len(partials) == 1
    # Restart: the recording is repaired and registered as interrupted, and the
    # API serves it (decrypted: the file is sealed).
    added = subprocess.run(
        [
            *IVR,
            *("users", "add", "--email", "qa@example.com", "--name", "QA"),
            *("--role", "supervisor", "--password-stdin", "--data", str(data)),
        ],
        input="a long test password",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    port2 = _free_port()
    proc2 = _start(config, data, port2)
    try:
        served = _served_recording(port2, "qa@example.com", "a long test password")
    finally:
        proc2.send_signal(signal.SIGTERM)
    assert proc2.wait(20) == 0
    db = sqlite3.connect(data / "ivr.sqlite3")
    status, path, duration = db.execute(
        "SELECT status, path, duration_s FROM recordings"
    ).fetchone()
    call_end = db.execute("SELECT end_reason FROM calls").fetchone()[0]
    db.close()
    assert status == "interrupted"
    assert call_end == "error"
    final = data / "recordings" / path
    assert final.exists()
    assert not list((data / "recordings").rglob("*.partial"))
    audio, rate = read_recording_file(final, tmp_path / "data-keys")
    from_api, api_rate = sf.read(io.BytesIO(served), dtype="int16", always_2d=True)
    assert api_rate == rate
    assert np.array_equal(from_api, audio)
    assert audio.shape[1] == 2
    assert rate == 8000
    assert len(audio) / rate == duration
    # At most the last second is lost (plus the jitter buffer's 40 ms).
    assert duration >= killed_after - 1.0 - 0.1, (duration, killed_after)
    # What is there is exactly what was sent.
    sent_frames = noise_frames(400, seed=5)
    left = audio[: len(audio) // 160 * 160, 0].reshape(-1, 160)
    heard = [f for f in left if f.any()]
    first = next(i for i, f in enumerate(sent_frames) if np.array_equal(f, heard[0]))
    assert all(np.array_equal(f, sent_frames[first + k]) for k, f in enumerate(heard))
    assert first + len(heard) <= sent


def test_header_is_true_after_every_block(tmp_path: Path) -> None:
    path = tmp_path / "r.wav"
    writer = RecordingWriter(path, 8000)
    block = np.ones((8000, 2), dtype=np.int16)
    writer.write(block)
    writer.write(block)
    # Still open, still partial: any reader sees both blocks.
    with wave.open(str(writer.partial_path)) as w:
        assert w.getnframes() == 16000
    assert sf.info(str(writer.partial_path)).frames == 16000
    writer.close()
    assert path.exists()
    assert not writer.partial_path.exists()


def test_repair_cuts_a_torn_frame_and_fixes_the_sizes(tmp_path: Path) -> None:
    path = tmp_path / "r.wav"
    writer = RecordingWriter(path, 8000)
    writer.write(np.full((800, 2), 7, dtype=np.int16))
    partial = writer.partial_path
    with partial.open("ab") as f:  # a block written after the last header update, torn
        f.write(np.full((300, 2), 9, dtype=np.int16).tobytes() + b"\x01")
    assert repair_header(partial) == 1100
    audio, _ = sf.read(str(partial), dtype="int16")
    assert len(audio) == 1100
    assert (audio[800:] == 9).all()
