"""A real ``ivr serve --sip-port`` on loopback, for tests that call it with real SIP tools.

The same server as ``test_sipp.py``'s fixture (the shipped demo config, its
numbers, flows and prompts; transcription off; a supervisor signed in for
the API), started by :func:`serving` with the ``sip:`` settings and the size
of the RTP port range a module needs. Also the audio checks those tests
share: where one signal sits in another, and how closely it matches.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile as sf
import yaml

from ivr.config import SHIPPED_CONFIG

Samples = npt.NDArray[np.int16]

IVR = [sys.executable, "-m", "ivr"]
PASSWORD = "a long password"
SUPERVISOR = ("--role", "supervisor", "--password-stdin", "--data")


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def free_sip_port() -> int:
    """A port free on both UDP and TCP."""
    for _ in range(50):
        port = _free_port(socket.SOCK_DGRAM)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no port free on both UDP and TCP")


@dataclass
class Server:
    url: str
    sip_port: int
    token: str
    log: Path
    proc: subprocess.Popen[str] | None = None  # the server process (to signal it)

    def get(self, path: str) -> Any:
        req = urllib.request.Request(
            f"{self.url}{path}", headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read()
        return body if path.endswith("/audio") else json.loads(body)

    def calls(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get("/v1/calls?limit=100")["items"]
        return items

    def new_call(
        self, before: set[str], timeout_s: float = 20, *, media: bool = False
    ) -> dict[str, Any]:
        """The one call that is not in ``before``, once it has ended and is saved
        (with ``media``: once its RTP figures are saved too)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            new = [c for c in self.calls() if c["id"] not in before]
            if new and new[0].get("ended_at") and (new[0]["media"] or not media):
                assert len(new) == 1, new
                full: dict[str, Any] = self.get(f"/v1/calls/{new[0]['id']}")
                return full
            time.sleep(0.2)
        raise AssertionError(f"no new ended call; server log: {self.log.read_text()[-3000:]}")


@contextlib.contextmanager
def serving(
    tmp: Path,
    *,
    sip: dict[str, Any] | None = None,
    rtp_ports: int = 100,
    bots: dict[str, int] | None = None,
) -> Iterator[Server]:
    """A server on the demo config with ``sip`` as its ``sip:`` section, and ``bots`` (team:
    count) replacing the demo teams' bots (``support`` has 20: a 21st call waits for one).

    Stopped with SIGTERM at the end; its log must hold no traceback and no
    unmasked caller id of the tests' (``+15557654321``)."""
    config = yaml.safe_load(SHIPPED_CONFIG.read_text())
    for number in config["numbers"].values():
        number["transcription"] = False
    config["sip"] = dict(sip or {})
    for team, count in (bots or {}).items():
        config["teams"][team]["bots"] = count
    config["prompts_dir"] = str(SHIPPED_CONFIG.parent.parent / "prompts")
    (tmp / "ivr.yaml").write_text(yaml.safe_dump(config))
    data = tmp / "data"
    subprocess.run(
        [*IVR, "users", "add", "--email", "sam@example.com", "--name", "Sam", *SUPERVISOR,
         str(data)],
        input=PASSWORD + "\n", text=True, check=True, capture_output=True,
    )  # fmt: skip
    port, sip_port = _free_port(), free_sip_port()
    rtp_low = random.randrange(30000, 40000 - rtp_ports, 2)
    log = tmp / "server.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [*IVR, "serve", "--config", str(tmp / "ivr.yaml"), "--data", str(data),
             "--port", str(port), "--sip-port", str(sip_port),
             "--rtp-ports", f"{rtp_low}-{rtp_low + rtp_ports - 1}", "--drain-s", "5"],
            stdout=subprocess.PIPE, stderr=err, text=True, env={**os.environ},
        )  # fmt: skip
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline and "listening on" not in line:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        assert "listening on" in line, log.read_text()[-3000:]
        assert f"SIP: sip:127.0.0.1:{sip_port} (udp+tcp)" in line
        url = f"http://127.0.0.1:{port}"
        login = json.dumps({"email": "sam@example.com", "password": PASSWORD}).encode()
        req = urllib.request.Request(
            f"{url}/v1/auth/login", data=login, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            token = json.loads(resp.read())["token"]
        yield Server(url, sip_port, token, log, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert "+15557654321" not in text  # caller ids are masked in the log


def recording(server: Server, call: dict[str, Any], folder: Path) -> tuple[Samples, int]:
    """The call's (first) recording through the API: stereo int16 samples and the rate."""
    assert call["recordings"], call.get("recording_trace")
    wav = server.get(f"/v1/recordings/{call['recordings'][0]}/audio")
    path = folder / f"{call['id']}.wav"
    path.write_bytes(wav)
    audio, rate = sf.read(path, dtype="int16")
    assert audio.ndim == 2, "a recording is stereo: caller left, agent right"
    return np.asarray(audio, dtype=np.int16), int(rate)


def events(call: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in call["events"] if e["type"] == kind]


def frames_matching(
    heard: Samples, sent: Samples, *, frame: int = 160, search: int = 4000, tolerance: float = 0.1
) -> tuple[int, int]:
    """How many of ``heard``'s voiced 20 ms frames are found in ``sent``, in order.

    For G.711 audio from a real phone: the samples are close, not equal (two
    encoders' rounding), and the phone may slip a frame (its source ran dry
    and it sent silence). Each voiced frame of ``heard`` (peak over 200) is
    looked for in ``sent`` near where the previous one matched (within
    ``search`` samples), by normalised correlation; it matches when the
    residual after the best lag is under ``tolerance`` of its energy (µ-law
    quantisation leaves about 1.5%). Returns (matched, voiced)."""
    x = heard.astype(np.float64)
    y = sent.astype(np.float64)
    voiced = matched = 0
    lag: int | None = None
    for start in range(0, len(x) - frame + 1, frame):
        chunk = x[start : start + frame]
        if np.abs(chunk).max() < 200:
            continue
        voiced += 1
        energy = float(np.dot(chunk, chunk))
        if lag is not None:
            lo = max(0, start + lag - search)
            hi = min(len(y) - frame, start + lag + search)
        else:
            lo, hi = 0, len(y) - frame
        if hi < lo:
            continue
        window = y[lo : hi + frame]
        corr = np.correlate(window, chunk, mode="valid")
        best = int(np.argmax(corr))
        ref = window[best : best + frame]
        residual = float(np.dot(chunk - ref, chunk - ref))
        if residual < tolerance * energy:
            matched += 1
            lag = lo + best - start
    return matched, voiced


def band_energy(samples: Samples, freq: float, rate: int = 8000) -> float:
    """The mean power of ``samples`` at ``freq`` (Goertzel over the whole signal), per sample."""
    x = samples.astype(np.float64)
    if len(x) == 0:
        return 0.0
    t = np.arange(len(x)) / rate
    c = np.dot(x, np.cos(2 * np.pi * freq * t))
    s = np.dot(x, np.sin(2 * np.pi * freq * t))
    return float((c * c + s * s) / len(x) ** 2)
