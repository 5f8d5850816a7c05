"""linphonec, driven headless, against the mini UAS and SIPp's UAS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from media.g711 import ulaw_decode
from tests.sipkit import linphone, sipp
from tests.sipkit.uas import MiniUas, parse_sdp

pytestmark = pytest.mark.tools("linphone")


async def test_linphone_dials_sends_one_rfc_4733_key_and_hangs_up(
    tmp_path: Path, tone_wav: Path
) -> None:
    async with MiniUas() as uas:
        run = await linphone.call(
            uas.uri("+15550100"), wav=tone_wav, workdir=tmp_path, digit="7",
            digit_after_s=0.5, hangup_after_s=1.5, record=tmp_path / "heard.wav",
        )  # fmt: skip
    assert run.answered, run.output[-2000:]
    assert (run.ended, run.end_reason, run.returncode) == (True, "No error", 0)
    assert run.sent == "7"
    invite = uas.invites()[0]
    offer = parse_sdp(invite.body)
    assert offer.formats[:2] == (0, 8)  # PCMU, PCMA, then its telephone-event
    assert offer.event_pt is not None
    assert set(offer.formats) == {0, 8, offer.event_pt}  # every other codec is off
    assert "REGISTER" not in uas.methods()
    assert uas.methods() == ["INVITE", "ACK", "BYE"]
    assert uas.presses(offer.event_pt) == "7"
    assert {e.end for e in uas.events(offer.event_pt)} == {False, True}
    assert (tmp_path / "heard.wav").exists()


async def test_linphone_plays_the_wav_as_its_microphone(tmp_path: Path, tone_wav: Path) -> None:
    async with MiniUas() as uas:
        run = await linphone.call(uas.uri("+15550100"), wav=tone_wav, workdir=tmp_path,
                                  digit_after_s=5.0, hangup_after_s=1.5)  # fmt: skip
    assert run.answered
    assert run.sent == ""  # hung up before the key was due
    packets = sorted(uas.audio(0), key=lambda p: p.seq)
    assert len(packets) > 30
    heard = ulaw_decode(np.frombuffer(b"".join(p.payload for p in packets), np.uint8))
    # linphone's own processing (gain, a resampler) may shape it: look for 440 Hz.
    spectrum = np.abs(np.fft.rfft(heard[:8000].astype(float)))
    assert 430 <= np.argmax(spectrum) * 8000 / len(heard[:8000]) <= 450


async def test_linphone_calls_sipp_uas_answer(tmp_path: Path, tone_wav: Path) -> None:
    async with sipp.serving(sipp.scenario("uas_answer"), workdir=tmp_path / "sipp") as uas:
        run = await linphone.call(uas.uri("100"), wav=tone_wav, workdir=tmp_path,
                                  digit_after_s=0.3, hangup_after_s=1.0)  # fmt: skip
    assert run.answered
    assert uas.result is not None
    assert uas.result.returncode == sipp.SUCCESS, uas.result.errors
    assert uas.result.successful == 1


def test_linphonerc_enables_g711_only_and_keeps_ipv6_off() -> None:
    rc = linphone.linphonerc(5070, (20000, 20019))
    assert "use_ipv6=0\nipv6_migration_done=1" in rc
    enabled = [block for block in rc.split("\n\n") if "enabled=1" in block]
    assert [b.split("mime=")[1].split("\n")[0] for b in enabled] == ["PCMU", "PCMA"]
    assert "audio_rtp_port=20000-20019" in rc


async def test_linphone_reports_a_refused_call(tmp_path: Path, tone_wav: Path) -> None:
    async with MiniUas(numbers={"+15550100"}) as uas:
        run = await linphone.call(uas.uri("+15550999"), wav=tone_wav, workdir=tmp_path)
    assert not run.answered
    assert run.ended
    assert run.sent == ""
    assert run.returncode == 0
    assert uas.methods() == ["INVITE", "ACK"]


async def test_linphone_sends_the_key_by_sip_info_when_asked(
    tmp_path: Path, tone_wav: Path
) -> None:
    async with MiniUas() as uas:
        run = await linphone.call(uas.uri("+15550100"), wav=tone_wav, workdir=tmp_path,
                                  digit="5", digit_after_s=0.5, hangup_after_s=1.5,
                                  dtmf="info")  # fmt: skip
    assert run.answered
    assert run.sent == "5"
    infos = [r for r in uas.requests if r.method == "INFO"]
    assert len(infos) == 1
    assert infos[0].header("content-type") == "application/dtmf-relay"  # RFC 6086
    assert infos[0].body.splitlines()[0].strip() == "Signal=5"
    assert uas.events() == []  # no telephone-events as well
    assert "use_info=1" in (tmp_path / "linphone" / "linphonerc").read_text()
