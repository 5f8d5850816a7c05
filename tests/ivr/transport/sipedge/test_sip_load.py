"""A SIPp load run and WebSocket callers at once, on one real server.

SIPp places 100 calls at 10 a second, at most 40 at once (``uac_load.xml``):
each presses 1 (RFC 4733, ``dtmf_2833_1.pcap``) after the notice and,
once the bot has answered (2 s; the recording starts then), speaks SIPp's
7.08 s sample (``g711a.pcap``). While it runs, five WebSocket
callers (threads, so they keep real time) take the same recorded line and
talk. Every call of both kinds must be saved and recorded, and every
recording is read back through the API: the WebSocket callers' hold their
own 16-bit frames, SIPp's its decoded PCMA, sample for sample or else at
least 97% of their voiced 20 ms frames each exactly, in order (the WebSocket
callers are threads of this process: when it is busy they send late, and
late audio is played after a frame of silence, the rest moved;
``test_sip_exact.py`` asks every SIP recording of the same load to be
exact).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.ivr.transport.sipedge.live import Server, events, recording, serving
from tests.ivr.transport.sipedge.test_sipp import _find
from tests.sipkit import pcap, sipp
from tests.sipkit.conftest import available
from tests.threaded_caller import ThreadedCaller

CALLS, RATE, LIMIT, WS_CALLERS = 100, 10, 40, 5
TALK_S = 7.08  # g711a.pcap: 56,640 samples of PCMA

pytestmark = pytest.mark.skipif(
    not available("sipp") and not os.environ.get("CI"),
    reason="not installed: sipp (run .ci/setup --test)",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # 40 calls at once, each an RTP and RTCP port: 100 pairs leave room for lingering ones;
    # and a bot for each of the 45 callers at once (the demo's support team has 20).
    with serving(tmp_path_factory.mktemp("load"), rtp_ports=200, bots={"support": 60}) as live:
        yield live


def all_calls(server: Server) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = server.get("/v1/calls?limit=500")["items"]
    return items


def ws_frames(seed: int, seconds: float) -> list[np.ndarray[Any, np.dtype[np.int16]]]:
    rng = np.random.default_rng(seed)
    pcm = rng.normal(0, 2000, int(8000 * seconds)).clip(-8000, 8000).astype(np.int16)
    return [pcm[i : i + 160] for i in range(0, len(pcm), 160)]


def frames_found(heard: np.ndarray[Any, Any], sent: np.ndarray[Any, Any]) -> int:
    """How many of ``sent``'s 20 ms frames ``heard`` holds exactly, in order.

    The first loud frame fixes where the speech starts; a frame not at its place is
    looked for up to 1 s either side (frames of silence put in, or left out, move
    the rest), and the place is kept from there on. Silent frames are not counted
    (they would be found anywhere)."""
    loud = int(np.argmax(np.abs(sent) > 1000)) // 160 * 160
    offset = _place(heard, sent[loud : loud + 160], 0, len(heard))
    if offset is None:
        return 0
    offset -= loud
    found = 0
    for k in range(0, len(sent) - 159, 160):
        frame = sent[k : k + 160]
        if np.abs(frame).max() < 200:
            continue
        at = _place(heard, frame, offset + k - 8000, offset + k + 8000, near=offset + k)
        if at is not None:
            found, offset = found + 1, at - k
    return found


def _place(
    heard: np.ndarray[Any, Any], frame: np.ndarray[Any, Any], lo: int, hi: int, near: int = 0
) -> int | None:
    """Where ``frame`` is in ``heard[lo:hi]`` exactly, nearest to ``near``; or None."""
    lo, hi = max(0, lo), min(len(heard) - len(frame), hi)
    if hi < lo:
        return None
    candidates = lo + np.nonzero(heard[lo : hi + 1] == frame[0])[0]
    for at in sorted((int(c) for c in candidates), key=lambda c: abs(c - near)):
        if np.array_equal(heard[at : at + len(frame)], frame):
            return at
    return None


def test_100_sipp_calls_at_10_a_second_40_at_once_beside_websocket_callers(
    server: Server, tmp_path: Path
) -> None:
    before = {c["id"] for c in all_calls(server)}
    ws_url = server.url.replace("http://", "ws://") + "/v1/call"
    callers = [
        ThreadedCaller(ws_url, ws_frames(100 + i, 3.0), caller_id=f"+1555800000{i}")
        for i in range(WS_CALLERS)
    ]
    started = time.monotonic()
    command = sipp.command(
        sipp.scenario("uac_load"), f"127.0.0.1:{server.sip_port}", workdir=tmp_path / "sipp",
        timeout_s=60, service="+15550100", calls=CALLS, rate=RATE, limit=LIMIT,
        keys={"dtmf": str(sipp.shipped_pcap("dtmf_2833_1")),
              "audio": str(sipp.shipped_pcap("g711a"))},
        variables={"wait_ms": "6200", "after_ms": "2500", "talk_ms": "7300"},
    )  # fmt: skip
    child = subprocess.Popen(
        command, cwd=tmp_path / "sipp", stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        time.sleep(3)  # the SIP calls are coming in: the WebSocket callers join them
        for caller in callers:
            caller.start()
            time.sleep(0.5)
        output, _ = child.communicate(timeout=65)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    hangups = [caller.result(timeout=30) for caller in callers]
    took = time.monotonic() - started
    error_log = tmp_path / "sipp" / "errors.log"
    errors = error_log.read_text(errors="replace")[-3000:] if error_log.exists() else ""
    assert child.returncode == sipp.SUCCESS, output.decode(errors="replace")[-3000:] + errors
    assert took < 60, took

    sent = pcap.decoded_audio(sipp.shipped_pcap("g711a"), 8)
    assert len(sent) == int(TALK_S * 8000)
    deadline = time.monotonic() + 30
    while True:
        new = [c for c in all_calls(server) if c["id"] not in before]
        settled = [c for c in new if c.get("ended_at") and (c["media"] or c["transport"] != "sip")]
        if len(settled) == CALLS + WS_CALLERS or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    sip_calls = [c for c in settled if c["transport"] == "sip"]
    ws_calls = [c for c in settled if c["transport"] != "sip"]
    assert (len(sip_calls), len(ws_calls)) == (CALLS, WS_CALLERS)
    assert len({c["sip_call_id"] for c in sip_calls}) == CALLS
    assert {c["end_reason"] for c in settled} == {"caller"}

    broken: list[str] = []
    exact: list[bool] = []
    voiced = sum(np.abs(sent[k : k + 160]).max() >= 200 for k in range(0, len(sent), 160))
    for summary in sip_calls:
        call = server.get(f"/v1/calls/{summary['id']}")
        while not call["recordings"] and time.monotonic() < deadline + 10:
            time.sleep(0.2)  # the recording's row is written once its file is closed
            call = server.get(f"/v1/calls/{summary['id']}")
        assert [d["digit"] for d in events(call, "dtmf")] == ["1"], call["id"]
        assert len(call["recordings"]) == 1, json.dumps(call)[-3000:]
        meta = server.get(f"/v1/recordings/{call['recordings'][0]}")
        audio, rate = recording(server, call, tmp_path)
        assert rate == 8000
        assert abs(len(audio) / 8000 - meta["duration_s"]) < 0.05
        # From the bot's answer to the BYE: all of the speech, not much more (0.5 s before
        # it, 0.2 s after it, and the scheduling of a loaded machine).
        plausible = TALK_S <= meta["duration_s"] <= TALK_S + 2.0
        exact.append(_find(audio[:, 0], sent) is not None)
        found = voiced if exact[-1] else frames_found(audio[:, 0], sent)
        if not plausible or found < 0.97 * voiced:
            broken.append(f"{call['id']}: {meta['duration_s']} s, {found}/{voiced} frames")
    assert not broken, f"{len(broken)} of {CALLS} recordings damaged: {broken}"
    # Sample for sample, every frame in its place: not all of them on a loaded machine
    # (test_sip_exact.py asks that of every one).
    print(f"{sum(exact)} of {CALLS} SIP recordings sample-exact, the others 97% of frames")

    for hangup, caller in zip(hangups, callers, strict=True):
        recording_id = hangup["stats"]["recording_id"]
        assert recording_id, hangup
        call = next(c for c in ws_calls if c["stats"]["recording_id"] == recording_id)
        audio, _ = recording(server, server.get(f"/v1/calls/{call['id']}"), tmp_path)
        frames = np.concatenate(caller.frames)
        if _find(audio[:, 0], frames) is None:
            # The same damage as SIP calls take under this load (a frame of silence
            # put in at a late tick, the rest moved): all of the audio is there.
            ws_voiced = sum(
                np.abs(frames[k : k + 160]).max() >= 200 for k in range(0, len(frames), 160)
            )
            found = frames_found(audio[:, 0], frames)
            assert found >= 0.97 * ws_voiced, (
                f"{call['id']}: WebSocket audio not intact ({found}/{ws_voiced} frames)"
            )
