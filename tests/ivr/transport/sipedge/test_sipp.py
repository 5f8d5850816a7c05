"""Real SIPp calls to a real ``ivr serve --sip-port`` on loopback, with the demo config.

The server runs as a subprocess on the shipped demo config (its numbers,
flows and prompts), with transcription off (pocketsphinx is not under test
and would spend the machine's cores) and calls ringing 1.5 s before the
answer, so that SIPp can CANCEL one. The scenarios are in ``scenarios/``;
SIPp finds its shipped pcaps (``g711a.pcap``, ``dtmf_2833_*.pcap``) in
the folder it runs in, Debian's ``/usr/share/sip-tester``.
"""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from media.g711 import alaw_decode
from tests.ivr.transport.sipedge.live import Server, free_sip_port, serving

SCENARIOS = Path(__file__).parent / "scenarios"
PCAPS = Path("/usr/share/sip-tester")
SIPP = shutil.which("sipp")


def _sipp(
    server: Server, scenario: str, service: str, tmp: Path, *extra: str, calls: int = 1
) -> int:
    assert SIPP is not None, "SIPp (Debian's sip-tester) must be installed for these tests"
    sip_port = free_sip_port()
    media_port = random.randrange(42000, 48000, 4)
    cmd = [
        SIPP,
        f"127.0.0.1:{server.sip_port}",
        "-sf",
        str(SCENARIOS / scenario),
        "-s",
        service,
        "-m",
        str(calls),
        "-i",
        "127.0.0.1",
        "-p",
        str(sip_port),
        "-mp",
        str(media_port),
        "-nostdin",
        "-timeout",
        "60s",
        "-trace_err",
        "-error_file",
        str(tmp / f"{scenario}.errors.log"),
        "-trace_msg",
        "-message_file",
        str(tmp / f"{scenario}.messages.log"),
        *extra,
    ]
    done = subprocess.run(cmd, cwd=PCAPS, capture_output=True, text=True, timeout=90)
    if done.returncode != 0:
        messages = tmp / f"{scenario}.messages.log"
        print(done.stdout[-3000:], done.stderr[-2000:])
        if messages.exists():
            print(messages.read_text()[-6000:])
        print(server.log.read_text()[-3000:])
    return done.returncode


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("sipp"), sip={"answer_after_s": 1.5}) as live:
        yield live


def _pcap_payloads(name: str) -> bytes:
    """The RTP payloads of a SIPp pcap (Ethernet, IPv4, UDP, 12-byte RTP headers)."""
    data = (PCAPS / name).read_bytes()
    offset, out = 24, []
    while offset < len(data):
        length = struct.unpack_from("<I", data, offset + 8)[0]
        packet = data[offset + 16 : offset + 16 + length]
        offset += 16 + length
        out.append(packet[14 + 20 + 8 + 12 :])
    return b"".join(out)


def _find(haystack: np.ndarray[Any, Any], needle: np.ndarray[Any, Any]) -> int | None:
    """Where ``needle`` starts in ``haystack`` exactly, or None."""
    loud = int(np.argmax(np.abs(needle) > 1000))  # match on speech, not on flat silence
    probe = needle[loud : loud + 400]
    for at in np.nonzero(haystack == probe[0])[0]:
        start = int(at) - loud
        if (
            start >= 0
            and np.array_equal(haystack[at : at + len(probe)], probe)
            and np.array_equal(haystack[start : start + len(needle)], needle)
        ):
            return start
    return None


def _events(call: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in call["events"] if e["type"] == kind]


def test_press_1_records_exactly_the_audio_sipp_sent(server: Server, tmp_path: Path) -> None:
    before = {c["id"] for c in server.calls()}
    assert (
        _sipp(server, "uac_call.xml", "+15550100", tmp_path, "-key", "dtmf", "dtmf_2833_1.pcap")
        == 0
    )
    call = server.new_call(before, media=True)
    assert call["number"] == "+15550100"
    assert call["end_reason"] == "caller"
    assert (call["transport"], call["codec"], call["sample_rate"]) == ("sip", "pcma", 8000)
    assert call["sip_call_id"].endswith("@127.0.0.1")  # SIPp's [call_id]
    # Every packet of both pcaps counted: 10 telephone-events, 236 of audio.
    assert call["media"]["packets_received"] == 246
    # None lost: the press's three end packets share one sequence number, so the
    # two repeats count as duplicates and the loss as -2 (RFC 3550 appendix A.3).
    assert call["media"]["packets_lost"] <= 0
    assert call["media"]["packets_sent"] > 0
    assert [d["digit"] for d in _events(call, "dtmf")] == ["1"]
    assert _events(call, "dtmf")[0]["source"] == "rfc4733"
    assert call["recordings"], call["recording_trace"]
    wav = server.get(f"/v1/recordings/{call['recordings'][0]}/audio")
    (tmp_path / "call.wav").write_bytes(wav)
    audio, rate = sf.read(tmp_path / "call.wav", dtype="int16")
    assert rate == 8000
    assert audio.ndim == 2
    sent = alaw_decode(np.frombuffer(_pcap_payloads("g711a.pcap"), dtype=np.uint8))
    assert len(sent) == 236 * 240  # 7.08 s in 30 ms packets
    # The caller's channel holds every sample SIPp sent, in order, repacketised to 20 ms.
    start = _find(audio[:, 0], sent)
    assert start is not None
    changed = sent.copy()
    changed[len(sent) // 2] ^= 0x100
    assert _find(audio[:, 0], changed) is None  # one sample off would fail the test
    # The telephone-event packets never reached the recording: it starts after the press.
    assert call["stats"]["frames_malformed"] == 0


def test_press_2_is_not_recorded(server: Server, tmp_path: Path) -> None:
    before = {c["id"] for c in server.calls()}
    assert (
        _sipp(server, "uac_call.xml", "15550100", tmp_path, "-key", "dtmf", "dtmf_2833_2.pcap") == 0
    )
    call = server.new_call(before)
    assert call["number"] == "+15550100"  # dialled without the +
    assert [d["digit"] for d in _events(call, "dtmf")] == ["2"]
    assert call["recordings"] == []
    assert call["stats"]["recording_id"] is None


def test_cancel_while_ringing_gets_487_and_places_no_call(server: Server, tmp_path: Path) -> None:
    before = {c["id"] for c in server.calls()}
    assert _sipp(server, "uac_cancel.xml", "+15550100", tmp_path) == 0
    time.sleep(2)  # past the ring time: a call placed in spite of the CANCEL would show
    assert {c["id"] for c in server.calls()} == before


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_hold_is_answered_recvonly_and_resume_sendrecv(
    server: Server, tmp_path: Path, transport: str
) -> None:
    before = {c["id"] for c in server.calls()}
    assert _sipp(server, "uac_hold.xml", "+15550101", tmp_path, "-t", transport) == 0
    call = server.new_call(before)
    assert call["end_reason"] == "caller"


def test_unknown_number_gets_404(server: Server, tmp_path: Path) -> None:
    assert _sipp(server, "uac_unknown.xml", "+15559999999", tmp_path) == 0


def test_no_common_codec_gets_488(server: Server, tmp_path: Path) -> None:
    assert _sipp(server, "uac_no_codec.xml", "+15550100", tmp_path) == 0


def test_forty_calls_at_ten_a_second_twenty_at_once(server: Server, tmp_path: Path) -> None:
    before = {c["id"] for c in server.calls()}
    started = time.monotonic()
    code = _sipp(server, "uac_short.xml", "+15550101", tmp_path, "-r", "10", "-l", "20", calls=40)
    assert code == 0
    assert time.monotonic() - started < 30
    deadline = time.monotonic() + 20
    while True:
        new = [c for c in server.calls() if c["id"] not in before]
        if (len(new) == 40 and all(c["media"] for c in new)) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert len(new) == 40
    assert {c["transport"] for c in new} == {"sip"}
    assert {c["end_reason"] for c in new} == {"caller"}
    assert len({c["sip_call_id"] for c in new}) == 40
    assert [c["media"]["packets_received"] for c in new] == [10] * 40
