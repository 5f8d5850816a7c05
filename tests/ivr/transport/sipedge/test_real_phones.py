"""Real SIP phones (baresip, linphone) and SIPp's in-band DTMF, calling a real server.

Each test dials the demo number ``+15550100`` (the recording and AI notice,
about 5.6 s, then **1** for the recorded line, **2** for the line without
recording) on a server started by :mod:`live` with the shipped config, and
checks what the API says afterwards: the call is a SIP call, its digit
came the way the phone sent it, and it is recorded or not as the digit
says. Where a recording is made, its caller channel is compared with what
the phone's microphone played.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from media.dtmf import generate_sequence
from media.g711 import ulaw_decode, ulaw_encode
from tests.ivr.transport.sipedge.live import (
    Samples,
    Server,
    band_energy,
    events,
    frames_matching,
    recording,
    serving,
)
from tests.sipkit import baresip, linphone, sipp
from tests.sipkit.baresip import Digit
from tests.sipkit.conftest import available
from tests.sipkit.process import write_wav


def needs(tool: str) -> pytest.MarkDecorator:
    """Skip when ``tool`` is not installed, except where ``CI`` is set: there the test runs
    and fails, so that CI cannot pass by skipping (as ``tests/sipkit``'s ``tools`` marker)."""
    missing = not available(tool) and not os.environ.get("CI")
    return pytest.mark.skipif(missing, reason=f"not installed: {tool} (run .ci/setup --test)")


CALLER = "+15557654321"
PRESS_AFTER_S = 6.5  # after the answer: the notice (about 5.6 s) cannot be skipped
HANGUP_AFTER_S = 12.0  # the recorded line rings, a bot answers after 2 s: seconds of talk


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("phones")) as live:
        yield live


@pytest.fixture
def e164_phones(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kit's phones call as ``sip:caller@127.0.0.1``, and the edge refuses a From user
    that is not an E.164 caller id (403, docs/config.md): give them :data:`CALLER`."""
    write_config = baresip.write_config

    def e164_config(folder: Path, **kwargs: Any) -> Path:
        written = write_config(folder, **kwargs)
        accounts = folder / "accounts"
        accounts.write_text(accounts.read_text().replace("<sip:caller@", f"<sip:{CALLER}@"))
        return written

    linphonerc = linphone.linphonerc

    def e164_rc(*args: Any, **kwargs: Any) -> str:
        return linphonerc(*args, **kwargs).replace("contact=sip:caller@", f"contact=sip:{CALLER}@")

    monkeypatch.setattr(baresip, "write_config", e164_config)
    monkeypatch.setattr(linphone, "linphonerc", e164_rc)


def noise(seconds: float, seed: int) -> Samples:
    """White noise, a quarter of full scale at most: every 20 ms of it is unlike any other."""
    rng = np.random.default_rng(seed)
    pcm = rng.normal(0, 2500, int(8000 * seconds)).clip(-8000, 8000)
    return pcm.astype(np.int16)


def g711(pcm: Samples) -> Samples:
    """What a µ-law phone's audio decodes to on the server (the quantisation, nothing else)."""
    return ulaw_decode(ulaw_encode(pcm)).astype(np.int16)


@needs("baresip")
@pytest.mark.parametrize(("key", "recorded"), [("1", True), ("2", False)])
@pytest.mark.usefixtures("e164_phones")
async def test_baresip_call_is_recorded_as_its_digit_says_with_its_microphone(
    server: Server, tmp_path: Path, key: str, recorded: bool
) -> None:
    mic = noise(HANGUP_AFTER_S + 4, seed=13)
    wav = write_wav(tmp_path / "mic.wav", mic.astype("<i2").tobytes())
    before = {c["id"] for c in server.calls()}
    run = await baresip.call(
        f"sip:+15550100@127.0.0.1:{server.sip_port}", wav=wav, workdir=tmp_path,
        digits=[Digit(key, PRESS_AFTER_S)], hangup_after_s=HANGUP_AFTER_S,
    )  # fmt: skip
    assert run.answered, run.log[-3000:]
    assert run.sent == key
    assert run.closed
    call = server.new_call(before, media=True)
    assert call["transport"] == "sip"
    assert call["codec"] == "pcmu"  # baresip offers PCMU first
    assert call["end_reason"] == "caller"  # baresip hung up
    assert [(d["digit"], d["source"]) for d in events(call, "dtmf")] == [(key, "rfc4733")]
    assert call["media"]["packets_received"] > 0.8 * 50 * HANGUP_AFTER_S
    if not recorded:
        assert call["recordings"] == []
        assert call["stats"]["recording_id"] is None
        return
    audio, rate = recording(server, call, tmp_path)
    assert rate == 8000
    caller = audio[:, 0]
    matched, voiced = frames_matching(caller, g711(mic))
    # The recorded line starts after the press: at least 2.5 s of the microphone is in it,
    # in order, and nearly nothing else is.
    assert voiced >= 125, (matched, voiced)
    assert matched >= 0.95 * voiced, (matched, voiced)
    # The check can fail: another noise (the same level and spectrum) matches nothing.
    other, _ = frames_matching(caller[: 8000 * 2], g711(noise(HANGUP_AFTER_S + 4, seed=14)))
    assert other <= 2
    # The RFC 4733 press never reached the recording as audio: no frame of the caller's
    # channel is louder than the microphone could make it.
    assert np.abs(caller.astype(np.int32)).max() <= 8200


@needs("linphone")
@pytest.mark.parametrize(("key", "recorded"), [("1", True), ("2", False)])
@pytest.mark.usefixtures("e164_phones")
async def test_linphone_call_is_recorded_as_its_digit_says(
    server: Server, tmp_path: Path, key: str, recorded: bool
) -> None:
    # A 1 kHz tone as the microphone: not a DTMF frequency, easy to find in the recording.
    t = np.arange(int(8000 * (HANGUP_AFTER_S + 4))) / 8000
    mic = (6000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    wav = write_wav(tmp_path / "mic.wav", mic.astype("<i2").tobytes())
    before = {c["id"] for c in server.calls()}
    run = await linphone.call(
        f"sip:+15550100@127.0.0.1:{server.sip_port}", wav=wav, workdir=tmp_path,
        digit=key, digit_after_s=PRESS_AFTER_S, hangup_after_s=HANGUP_AFTER_S,
    )  # fmt: skip
    assert run.answered, run.output[-3000:]
    assert run.sent == key
    assert run.ended
    call = server.new_call(before, media=True)
    assert call["transport"] == "sip"
    assert call["codec"] in ("pcmu", "pcma")
    assert call["end_reason"] == "caller"
    # linphone's SDP names the host's outbound address; its packets come from loopback,
    # and the edge latched to them (symmetric RTP), or nothing would have been received.
    assert call["media"]["packets_received"] > 0.8 * 50 * HANGUP_AFTER_S
    assert [(d["digit"], d["source"]) for d in events(call, "dtmf")] == [(key, "rfc4733")]
    if not recorded:
        assert call["recordings"] == []
        assert call["stats"]["recording_id"] is None
        return
    audio, rate = recording(server, call, tmp_path)
    assert rate == 8000
    caller = audio[:, 0]
    loud = np.nonzero(np.abs(caller.astype(np.int32)) > 1000)[0]
    assert len(loud) >= 8000 * 2 * 0.5, "at least 2 s of the microphone recorded"
    voiced = caller[loud[0] : loud[-1] + 1]
    # The tone is there, and it is the tone: 1 kHz dominates 500 Hz and 2 kHz by far.
    at_1k = band_energy(voiced, 1000)
    assert at_1k > 100 * band_energy(voiced, 500)
    assert at_1k > 100 * band_energy(voiced, 2000)


@needs("sipp")
async def test_inband_dtmf_over_rtp_selects_the_line_and_is_masked(
    server: Server, tmp_path: Path
) -> None:
    """SIPp streams mu-law holding a tone "1" (the consent), then speech-like tone with a
    "5" in it, later, on the recorded line: the branch follows the tone, and the
    recording holds the 440 Hz but none of the "5"'s 770 Hz and 1336 Hz."""
    speech = (3000 * np.sin(2 * np.pi * 440 * np.arange(8000 * 3) / 8000)).astype(np.int16)
    stream = np.concatenate(
        [
            generate_sequence("1", 200, 300, 8000),  # the press, 0.5 s
            np.zeros(8000 * 2, np.int16),  # the bot answers after 2 s
            speech,
            generate_sequence("5", 200, 100, 8000),
            speech,
        ]
    ).astype(np.int16)
    sipp.write_ulaw(tmp_path, stream.astype("<i2").tobytes())
    before = {c["id"] for c in server.calls()}
    run = await sipp.run(
        sipp.scenario("uac_rtpstream"), f"127.0.0.1:{server.sip_port}", workdir=tmp_path,
        service="+15550100", variables={"wait_ms": "6500", "talk_ms": "9500"}, timeout_s=40,
    )  # fmt: skip
    assert run.returncode == sipp.SUCCESS, run.errors[-3000:] + run.output[-2000:]
    call = server.new_call(before, media=True)
    assert call["transport"] == "sip"
    assert call["codec"] == "pcmu"
    digits = [(d["digit"], d["source"]) for d in events(call, "dtmf")]
    assert digits[0] == ("1", "inband"), digits
    audio, _ = recording(server, call, tmp_path)
    caller = audio[:, 0]
    # The recording holds the speech around the "5": both 3 s of 440 Hz at 3000, nearly
    # all of it (such a sine is over 1000 in 78% of its samples).
    loud = np.count_nonzero(np.abs(caller.astype(np.int32)) > 1000)
    assert loud > 0.9 * 0.78 * 8000 * 6, loud
    # No 40 ms of it holds both of the "5"'s tones, while the stream SIPp sent does.
    assert dtmf_peak(caller, 770, 1336) < 0.01 * dtmf_peak(speech, 440, 440)
    assert dtmf_peak(stream, 770, 1336) > 0.1 * dtmf_peak(speech, 440, 440)


def dtmf_peak(samples: Samples, low: float, high: float, window: int = 320) -> float:
    """The most of both ``low`` and ``high`` (the weaker of the two) in any 40 ms window."""
    peak = 0.0
    for start in range(0, len(samples) - window + 1, window // 2):
        chunk = samples[start : start + window]
        peak = max(peak, min(band_energy(chunk, low), band_energy(chunk, high)))
    return peak
