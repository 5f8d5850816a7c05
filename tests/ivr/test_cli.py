"""The ``ivr`` command as a user runs it: real processes, real signals."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.conftest import noise_frames, read_recording_file, write_yaml

IVR = [sys.executable, "-m", "ivr"]


def run(
    *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*IVR, *args], input=stdin, capture_output=True, text=True, timeout=60, cwd=cwd
    )


def test_check_config_accepts_the_shipped_demo() -> None:
    result = run("check-config")
    assert result.returncode == 0, result.stderr
    assert "ok (5 numbers" in result.stdout


def test_check_config_names_the_file_and_the_path(
    tmp_path: Path, config_data: dict[str, Any]
) -> None:
    config_data["flows"]["consent"]["nodes"]["consent"]["options"]["1"]["next"] = "recorde"
    path = write_yaml(tmp_path / "bad.yaml", config_data)
    result = run("check-config", "--config", str(path))
    assert result.returncode == 1
    assert str(path) in result.stderr
    assert "flows.consent.nodes.consent.options.1.next: no node named 'recorde'" in result.stderr
    assert "Traceback" not in result.stderr


def test_users_add_with_password_from_stdin_and_generated(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = run(
        "users",
        "add",
        "--email",
        "ana@example.com",
        "--name",
        "Ana",
        "--role",
        "agent",
        "--team",
        "desk",
        "--password-stdin",
        "--data",
        str(data),
        stdin="a long password\n",
    )
    assert result.returncode == 0, result.stderr
    assert "added agent ana@example.com" in result.stdout
    assert "long password" not in result.stdout
    result = run(
        "users",
        "add",
        "--email",
        "sam@example.com",
        "--name",
        "Sam",
        "--role",
        "supervisor",
        "--data",
        str(data),
    )
    assert result.returncode == 0
    assert "password (shown once): " in result.stdout
    again = run(
        "users",
        "add",
        "--email",
        "ana@example.com",
        "--name",
        "Ana",
        "--role",
        "agent",
        "--data",
        str(data),
    )
    assert again.returncode == 1
    assert "already exists" in again.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.parametrize(("sig", "loop"), [(signal.SIGINT, "uvloop"), (signal.SIGTERM, "asyncio")])
def test_serve_shuts_down_cleanly_on_a_signal_during_calls(
    tmp_path: Path, config_data: dict[str, Any], sig: signal.Signals, loop: str
) -> None:
    """Whole recorded calls, then a signal, on uvloop and on the standard loop."""
    config = write_yaml(tmp_path / "ivr.yaml", config_data)
    port = _free_port()
    data = tmp_path / "data"
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
            "--drain-s",  # SIGTERM without a drain: the calls end with shutdown at once
            "0",
            "--loop",
            loop,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    try:
        assert proc.stdout is not None
        line = ""
        deadline = time.monotonic() + 30
        while "listening on" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line
        assert f"loop: {loop})" in line
        hangups = asyncio.run(_calls_then_signal(port, proc, sig))
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [h["reason"] for h in hangups] == ["shutdown"] * 3
    assert all(h["stats"]["recording_id"] for h in hangups)
    files = sorted((data / "recordings").rglob("*"))
    wavs = [f for f in files if f.is_file()]
    assert len(wavs) == 3
    assert all(f.suffix == ".wav" for f in wavs)
    for f in wavs:
        audio, rate = read_recording_file(f, data.parent / f"{data.name}-keys")
        assert rate == 8000
        assert len(audio) >= 0.3 * 8000
    stderr = proc.stderr.read() if proc.stderr else ""
    assert "+15557654321" not in stderr  # phone numbers are masked in logs
    assert "Traceback" not in stderr


async def _calls_then_signal(
    port: int, proc: subprocess.Popen[str], sig: signal.Signals
) -> list[dict[str, Any]]:
    frames = [f.astype("<i2").tobytes() for f in noise_frames(200)]

    async def call(connected: asyncio.Event) -> dict[str, Any]:
        async with websockets.connect(f"ws://127.0.0.1:{port}/v1/call") as ws:
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
            sending: asyncio.Task[None] | None = None

            async def talk() -> None:
                for f in frames:
                    await ws.send(f)
                    await asyncio.sleep(0.02)

            async for msg in ws:
                if isinstance(msg, bytes):
                    continue
                m = json.loads(msg)
                if m["type"] == "connected":
                    sending = asyncio.create_task(talk())
                    connected.set()
                if m["type"] == "hangup":
                    if sending:
                        sending.cancel()
                    return dict(m)
        raise AssertionError("closed without hangup")

    events = [asyncio.Event() for _ in range(3)]
    tasks = [asyncio.create_task(call(e)) for e in events]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 15)
    await asyncio.sleep(0.5)
    proc.send_signal(sig)
    return list(await asyncio.wait_for(asyncio.gather(*tasks), 20))


def test_check_flows_passes_the_demo_and_refuses_a_non_compliant_flow(
    tmp_path: Path, config_data: dict[str, Any]
) -> None:
    ok = run("check-flows")
    assert ok.returncode == 0, ok.stderr
    config_data["flows"]["consent"]["nodes"]["consent"]["on_timeout"] = "recorded"
    path = write_yaml(tmp_path / "bad.yaml", config_data)
    bad = run("check-flows", "--config", str(path))
    assert bad.returncode == 1
    assert "default_branch" in bad.stderr
    assert "notice -> consent" in bad.stderr
    serve = run("serve", "--config", str(path), "--data", str(tmp_path / "d"), "--port", "1")
    assert serve.returncode == 1  # the server does not start on it
    assert "default_branch" in serve.stderr


def test_serve_refuses_a_bad_rtp_port_range() -> None:
    bad = run("serve", "--sip-port", "5060", "--rtp-ports", "30001-30002")
    assert bad.returncode == 2
    assert "no even port" in bad.stderr
    assert run("serve", "--rtp-ports", "high-low").returncode == 2
