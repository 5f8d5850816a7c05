"""Transcription worker processes do not outlive a SIGKILLed server.

A real ``ivr serve`` transcribes a real recorded call (so its process pool is
up), then gets ``kill -9``. Every child process it had must be gone within a
few seconds: the pool's workers ask the kernel for a signal when their
parent dies (``PR_SET_PDEATHSIG``), and watch their parent otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import websockets

from tests.conftest import write_yaml
from tests.ivr.server.test_crash import _start
from tests.ivr.speech.test_transcribe import SENTENCE, frames_of, speech
from tests.ivr.test_cli import _free_port

PASSWORD = "a long password for sup"


def _stat(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, state, start time) of a process, or None if there is none."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[1]), fields[0], fields[19]


def _children(parent: int) -> dict[int, str]:
    """The live children of ``parent``: pid -> start time."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None and st[0] == parent and st[1] != "Z":
                out[int(entry.name)] = st[2]
    return out


def _alive(pid: int, started: str) -> bool:
    st = _stat(pid)
    return st is not None and st[1] != "Z" and st[2] == started


async def _transcribed_call(port: int) -> None:
    """A consenting caller speaks on +15550100 (a bot answers); wait for the transcript."""
    silence = [np.zeros(160, np.int16)] * 25
    frames = [f.astype("<i2").tobytes() for f in silence + frames_of(speech(SENTENCE)) + silence]
    base = f"http://127.0.0.1:{port}"
    async with websockets.connect(f"ws://127.0.0.1:{port}/v1/call") as ws:
        dial = {"type": "dial", "to": "+15550100", "from": "+15557654321"}
        await ws.send(json.dumps({**dial, "codec": "pcm_s16le", "rate": 8000}))
        recording_id = None
        async for raw in ws:
            if isinstance(raw, bytes):
                continue
            m = json.loads(raw)
            if m["type"] == "prompt" and m["event"] == "start" and m["node"] == "consent":
                await ws.send(json.dumps({"type": "dtmf", "digits": "1"}))
            elif m["type"] == "connected":
                start = time.monotonic()
                for i, f in enumerate(frames):
                    delay = start + i * 0.02 - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    await ws.send(f)
                await ws.send(json.dumps({"type": "hangup"}))
            elif m["type"] == "hangup":
                recording_id = m["stats"]["recording_id"]
    assert recording_id is not None
    async with aiohttp.ClientSession(base) as http:
        login = {"email": "sup@example.com", "password": PASSWORD}
        async with http.post("/v1/auth/login", json=login) as resp:
            assert resp.status == 200, await resp.text()
            token = (await resp.json())["token"]
        headers = {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + 60
        while True:
            url = f"/v1/recordings/{recording_id}/transcript"
            async with http.get(url, headers=headers) as resp:
                body: dict[str, Any] = await resp.json()
                if resp.status == 200:
                    assert body["segments"], body
                    return
                assert body["error"]["code"] == "no_transcript", body
            assert time.monotonic() < deadline, "no transcript within 60 s"
            await asyncio.sleep(0.5)


@pytest.mark.slow
def test_transcription_workers_exit_when_the_server_is_killed(
    tmp_path: Path, config_data: dict[str, Any]
) -> None:
    config = write_yaml(tmp_path / "ivr.yaml", config_data)
    data = tmp_path / "data"
    user = ["--email", "sup@example.com", "--name", "Sup", "--role", "supervisor"]
    added = subprocess.run(
        [
            sys.executable,
            "-m",
            "ivr",
            "users",
            "add",
            *user,
            "--password-stdin",
            "--data",
            str(data),
        ],
        input=PASSWORD,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    port = _free_port()
    proc = _start(config, data, port)
    children: dict[int, str] = {}
    try:
        asyncio.run(_transcribed_call(port))
        children = _children(proc.pid)
        workers = [
            pid
            for pid in children
            if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        ]
        assert workers, f"no pool worker among the server's children {children}"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
        deadline = time.monotonic() + 5
        while any(_alive(pid, st) for pid, st in children.items()):
            assert time.monotonic() < deadline, {
                pid: Path(f"/proc/{pid}/cmdline").read_bytes()
                for pid, st in children.items()
                if _alive(pid, st)
            }
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for pid, st in children.items():  # never leave one behind, whatever failed
            if _alive(pid, st):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


# The parent: starts one child that arms the death watch, prints its pid, then
# waits for it (so a child that fails ends the parent, and the test, at once).
_PARENT = """
import os, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid()), sys.argv[2]])
print(child.pid, flush=True)
child.wait(120)
"""
# The child: arms it for the parent's pid, says so (on the parent's stdout), then waits.
_CHILD = """
import sys, time
from ivr.speech.worker import _die_with_parent
_die_with_parent(int(sys.argv[1]), prctl=sys.argv[2] == "prctl")
print("armed", flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("how", ["prctl", "watcher"])
def test_a_worker_dies_with_its_parent_by_either_means(how: str) -> None:
    """``prctl`` on Linux; the ``os.getppid()`` watcher thread that other platforms use."""
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, _CHILD, how], stdout=subprocess.PIPE, text=True
    )
    child = 0
    started = ""
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        st = _stat(child)
        assert st is not None
        started = st[2]
        assert parent.stdout.readline().strip() == "armed"
        time.sleep(0.7)  # armed, and it stays up while its parent lives
        assert _alive(child, started)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 5
        while _alive(child, started):
            assert time.monotonic() < deadline, f"the child outlived its parent ({how})"
            time.sleep(0.05)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        if child and _alive(child, started):
            os.kill(child, signal.SIGKILL)
