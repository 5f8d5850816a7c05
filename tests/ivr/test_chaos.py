"""A minute of attacks beside 20 honest recorded calls, against a real server process.

The attacker (``tests/chaos.py``) runs in a process of its own and cycles
through every hostile or broken client of the hardening issue: floods of
digits and frames, frames of the wrong size, malformed JSON, junk caller
ids, unknown numbers, oversize messages, slow and idle readers, concurrent
wrong logins, gzip bombs, wrong content types, requests aiohttp's parser
refuses, foreign origins, path tricks, the heaviest reads, and agents whose
session is revoked. Each attack checks the documented answer. Meanwhile 20
honest callers (each in its own thread) record calls; every one must
complete, and every recording must hold exactly what its caller sent, on
the call's time line.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import soundfile as sf

from tests.conftest import noise_frames, write_yaml
from tests.ivr.test_cli import _free_port
from tests.threaded_caller import ThreadedCaller
from tests.timeline import assert_on_timeline

IVR = [sys.executable, "-m", "ivr"]
ATTACK_S = 60
HONEST = 20
TALK_FRAMES = 50 * 18  # 18 s each, in four waves of five across the minute


def _add_user(data: Path, email: str, role: str, *teams: str) -> None:
    team_args = [a for t in teams for a in ("--team", t)]
    subprocess.run(
        [
            *IVR,
            "users",
            "add",
            "--email",
            email,
            "--name",
            email.split("@")[0],
            "--role",
            role,
            *team_args,
            "--password-stdin",
            "--data",
            str(data),
        ],
        input="a long password\n",
        text=True,
        check=True,
        capture_output=True,
    )


def _login(url: str, email: str) -> str:
    req = urllib.request.Request(
        f"{url}/v1/auth/login",
        data=json.dumps({"email": email, "password": "a long password"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        token: str = json.loads(resp.read())["token"]
        return token


def _get(url: str, token: str) -> bytes:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        body: bytes = resp.read()
        return body


def _start(config: Path, data: Path, port: int, log: Path) -> subprocess.Popen[str]:
    with log.open("w") as err:
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
            stderr=err,
            text=True,
            env={**os.environ},
        )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if "listening on" in proc.stdout.readline():
            return proc
    proc.kill()
    raise AssertionError(f"the server did not start: {log.read_text()[-2000:]}")


def test_a_minute_of_attacks_beside_twenty_honest_recorded_calls(
    tmp_path: Path, config_data: dict[str, Any]
) -> None:
    # Transcription would spend the two cores on pocketsphinx; it is not under test here.
    config_data["numbers"]["+15550100"]["transcription"] = False
    config = write_yaml(tmp_path / "ivr.yaml", config_data)
    data = tmp_path / "data"
    _add_user(data, "sam@example.com", "supervisor")
    _add_user(data, "agent@example.com", "agent", "desk")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server_log = tmp_path / "server.log"
    proc = _start(config, data, port, server_log)
    try:
        supervisor = _login(url, "sam@example.com")
        # Sessions for the revoked-agent attack, taken before the wrong-login
        # bursts lock this address out of logging in.
        agents = [_login(url, "agent@example.com") for _ in range(40)]
        tokens = tmp_path / "tokens.json"
        tokens.write_text(json.dumps({"supervisor": supervisor, "agents": agents}))
        out = tmp_path / "attacks.json"
        attacker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.chaos",
                "--url",
                url,
                "--tokens",
                str(tokens),
                "--seconds",
                str(ATTACK_S),
                "--out",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        honest: list[tuple[ThreadedCaller, list[Any]]] = []
        started = time.monotonic()
        for wave in range(4):
            while time.monotonic() < started + wave * 13:
                time.sleep(0.1)
            for k in range(HONEST // 4):
                sent = noise_frames(TALK_FRAMES, seed=100 + wave * 10 + k)
                caller = ThreadedCaller(f"ws://127.0.0.1:{port}/v1/call", sent)
                caller.start()
                honest.append((caller, sent))
        _, attack_err = attacker.communicate(timeout=ATTACK_S + 120)
        assert attacker.returncode == 0, attack_err[-3000:]
        hangups = [c.result(timeout=120) for c, _ in honest]
        assert proc.poll() is None, "the server died"

        # Every attack ran, and every one was answered as documented.
        results = json.loads(out.read_text())
        assert all(r["runs"] >= 1 for r in results.values()), results
        undocumented = {n: r for n, r in results.items() if r["as_documented"] != r["runs"]}
        assert not undocumented, json.dumps(undocumented, indent=1)

        # Every honest call completed, and its recording is exact.
        for (caller, sent), hangup in zip(honest, hangups, strict=True):
            assert caller.close_code == 1000, caller.messages[-3:]
            assert hangup["reason"] == "caller"
            rec_id = hangup["stats"]["recording_id"]
            rec = json.loads(_get(f"{url}/v1/recordings/{rec_id}", supervisor))
            assert rec["status"] == "complete"
            for gap in rec["gaps"]:  # the time line may hold a stall, but says so
                assert gap["reason"] == "clock_stall"
            wav = _get(f"{url}/v1/recordings/{rec_id}/audio", supervisor)
            audio, rate = sf.read(io.BytesIO(wav), dtype="int16", always_2d=True)
            assert rate == 8000
            assert len(audio) % 160 == 0
            found = assert_on_timeline(audio[:, 0].reshape(-1, 160), sent)
            stats = hangup["stats"]
            playable = stats["frames_received"] - stats["frames_dropped"]
            assert playable - 12 <= found <= playable, (found, stats)
            assert found >= 0.95 * len(sent), (found, stats)

        metrics = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
        assert 'ivr_ws_limit_closes_total{limit="rate_limited"}' in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert proc.returncode == 0, server_log.read_text()[-3000:]
    assert "Traceback" not in server_log.read_text()
