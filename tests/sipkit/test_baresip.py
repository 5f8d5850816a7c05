"""baresip, driven headless, against the mini UAS, SIPp's UAS, and as a called UA for SIPp."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import numpy as np
import pytest

from media.g711 import ulaw_decode
from tests.sipkit import baresip, sipp
from tests.sipkit.baresip import Digit
from tests.sipkit.conftest import tone
from tests.sipkit.process import LOOPBACK, read_wav
from tests.sipkit.uas import MiniUas, parse_sdp

pytestmark = pytest.mark.tools("baresip")


async def test_baresip_dials_sends_rfc_4733_keys_on_time_and_hangs_up(
    tmp_path: Path, tone_wav: Path
) -> None:
    async with MiniUas() as uas:
        run = await baresip.call(
            uas.uri("+15550100"), wav=tone_wav, workdir=tmp_path,
            digits=[Digit("1", 0.3), Digit("#", 1.0)], hangup_after_s=1.8,
        )  # fmt: skip
    assert run.answered
    assert run.closed
    assert run.returncode == 0
    assert run.sent == "1#"
    assert run.event_types()[-3:] == ["CALL_CLOSED", "SHUTDOWN", "EXIT"]
    offer = parse_sdp(uas.invites()[0].body)
    assert offer.formats == (0, 8, 101)
    assert (offer.address, offer.encoding(101)) == (LOOPBACK, "telephone-event/8000")
    assert uas.methods() == ["INVITE", "ACK", "BYE"]  # baresip hung up
    assert uas.presses() == "1#"
    first = {e.key: min(p.arrived for p in uas.rtp if p.pt == 101 and p.ts == e.ts)
             for e in uas.events()}  # fmt: skip
    assert 0.5 < first["#"] - first["1"] < 0.9  # pressed 0.7 s apart
    assert all(e.volume == 10 for e in uas.events())


async def test_baresip_plays_the_wav_as_its_microphone(tmp_path: Path, tone_wav: Path) -> None:
    async with MiniUas() as uas:
        run = await baresip.call(uas.uri("+15550100"), wav=tone_wav, workdir=tmp_path,
                                 hangup_after_s=1.8)  # fmt: skip
    assert run.answered
    packets = sorted(uas.audio(0), key=lambda p: p.seq)
    assert {len(p.payload) for p in packets} == {160}  # 20 ms of PCMU
    assert 60 <= len(packets) <= 110
    frames = [ulaw_decode(np.frombuffer(p.payload, np.uint8)).astype(int) for p in packets]
    # The 440 Hz tone in order (G.711 is lossy: close, not equal), the padding's
    # silence after it. On a busy machine baresip's source may run dry for a
    # frame and send silence in between: those frames are left out.
    voiced = [i for i, f in enumerate(frames) if np.abs(f).max() >= 10]
    assert 45 <= len(voiced) <= 50  # the file holds 50 frames of tone
    heard = np.concatenate([frames[i] for i in voiced])
    assert np.abs(heard - np.frombuffer(tone(1000), np.int16)[: len(heard)]).max() < 300
    assert np.abs(np.concatenate(frames[voiced[-1] + 1 :])).max() < 10


async def test_baresip_calls_sipp_uas_answer_and_hears_its_echo(
    tmp_path: Path, tone_wav: Path
) -> None:
    async with sipp.serving(sipp.scenario("uas_answer"), workdir=tmp_path / "sipp",
                            extra=["-rtp_echo"]) as uas:  # fmt: skip
        run = await baresip.call(uas.uri("100"), wav=tone_wav, workdir=tmp_path, hangup_after_s=1.0)
    assert run.answered
    assert uas.result is not None
    assert uas.result.returncode == sipp.SUCCESS, uas.result.errors  # the offer passed its checks
    received = re.search(r"packets:\s+(\d+)\s+(\d+)", run.log)
    assert received is not None, run.log
    assert int(received.group(2)) > 20  # SIPp echoed baresip's own RTP


async def test_sipp_calls_baresip_which_answers_by_itself(tmp_path: Path, tone_wav: Path) -> None:
    async with baresip.answering(tone_wav, tmp_path) as callee:
        port = callee.uri.rsplit(":", 1)[1]
        run = await sipp.run(
            sipp.scenario("uac_pcap"), f"{LOOPBACK}:{port}", workdir=tmp_path / "sipp",
            service="callee",
            keys={"dtmf": str(sipp.shipped_pcap("dtmf_2833_5")),
                  "audio": str(sipp.shipped_pcap("g711a"))},
            variables={"wait_ms": "200", "after_ms": "100", "talk_ms": "500"},
        )  # fmt: skip
        closed = await callee.wait_event("CALL_CLOSED", 5.0)
    assert run.returncode == sipp.SUCCESS, run.errors
    assert closed is not None
    assert callee.control.event("CALL_ESTABLISHED") is not None
    ok = next(m for m in run.received() if m.startswith("SIP/2.0 200") and "m=audio" in m)
    answer = parse_sdp(ok.split("\n\n", 1)[1])
    assert answer.formats[0] == 8  # baresip takes SIPp's first choice, PCMA
    assert answer.event_pt == 101
    assert "received event: '5'" in callee.child.output  # the pcap's RFC 4733 press
    assert "audio: peer changed ptime_tx 20ms -> 30ms" in callee.child.output


async def test_a_refused_call_ends_the_run_with_its_status(tmp_path: Path, tone_wav: Path) -> None:
    async with MiniUas(numbers={"+15550100"}) as uas:
        run = await baresip.call(uas.uri("+15550999"), wav=tone_wav, workdir=tmp_path)
    assert not run.answered
    assert run.closed
    assert "404" in run.close_reason
    assert run.returncode == 0
    assert uas.methods() == ["INVITE", "ACK"]


async def test_a_call_that_is_never_answered_is_bounded(tmp_path: Path, tone_wav: Path) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with MiniUas(answer_after_s=60.0) as uas:
        run = await baresip.call(uas.uri("+15550100"), wav=tone_wav, workdir=tmp_path,
                                 answer_timeout_s=1.0)  # fmt: skip
    assert not run.answered
    assert run.closed
    assert loop.time() - started < 4.0
    assert "CANCEL" in uas.methods()  # baresip gave up properly when we hung up


async def test_baresip_writes_what_it_heard_and_sent_with_record_dir(
    tmp_path: Path, tone_wav: Path
) -> None:
    async with sipp.serving(sipp.scenario("uas_answer"), workdir=tmp_path / "sipp",
                            extra=["-rtp_echo"]) as uas:  # fmt: skip
        run = await baresip.call(uas.uri("100"), wav=tone_wav, workdir=tmp_path,
                                 hangup_after_s=1.0, record_dir=tmp_path / "heard")  # fmt: skip
    assert run.answered
    dumps = sorted(p.name for p in (tmp_path / "heard").glob("dump-*.wav"))
    assert [name.rsplit("-", 1)[1] for name in dumps] == ["dec.wav", "enc.wav"]
    sent, rate, channels = read_wav(next((tmp_path / "heard").glob("dump-*-enc.wav")))
    assert (rate, channels) == (8000, 1)
    assert sent[:16000] == tone(1000)  # what baresip sent: the microphone WAV, as it is
    heard, _, _ = read_wav(next((tmp_path / "heard").glob("dump-*-dec.wav")))
    assert np.abs(np.frombuffer(heard, np.int16)).max() > 4000  # SIPp's echo of the tone


async def test_baresip_dials_over_tcp(tmp_path: Path, tone_wav: Path) -> None:
    async with sipp.serving(sipp.scenario("uas_answer"), workdir=tmp_path / "sipp",
                            transport="t1") as uas:  # fmt: skip
        run = await baresip.call(f"{uas.uri('100')};transport=tcp", wav=tone_wav,
                                 workdir=tmp_path, hangup_after_s=0.5)  # fmt: skip
    assert run.answered
    assert uas.result is not None
    assert uas.result.returncode == sipp.SUCCESS, uas.result.errors
    assert "TCP message received" in uas.result.messages
