"""What callers send: unique talk frames, G.711 on the wire, and in-band DTMF tones.

The G.711 in-band scenario cannot run against the server until it takes
``pcmu`` and detects tones in-band; these tests check the runner's half
offline: the tones it sends, encoded as mu-law and decoded as the server
will, are found by the detector, and nothing else it sends is.
"""

from __future__ import annotations

import numpy as np
import pytest

from ivr.load.audio import (
    NOISE_BLOCK,
    SIGNATURE_SAMPLES,
    SignatureTables,
    WireCodec,
    dtmf_frames,
    expected_talk,
    file_talk,
    heard,
    talk_pcm,
    wire_codec,
)
from media.dtmf import detect
from media.g711 import ulaw_decode, ulaw_encode


@pytest.mark.parametrize(
    ("name", "rate", "size"),
    [("pcm_s16le", 8000, 320), ("pcm_s16le", 16000, 640), ("pcmu", 8000, 160), ("pcma", 8000, 160)],
)
def test_wire_sizes_follow_the_protocol(name: str, rate: int, size: int) -> None:
    codec = wire_codec(name, rate)
    assert codec.frame_bytes == size
    talk = SignatureTables(codec).noise_talk(3)
    assert {len(talk.frame(k)) for k in range(60)} == {size}


def test_codecs_outside_the_protocol_are_refused() -> None:
    for name, rate in (("pcmu", 16000), ("opus", 48000)):
        with pytest.raises(ValueError, match="no codec"):
            wire_codec(name, rate)


def test_talk_frames_are_unique_never_silent_and_deterministic() -> None:
    codec = wire_codec("pcm_s16le", 8000)
    tables = SignatureTables(codec)
    a, b = tables.noise_talk(42), tables.noise_talk(43)
    frames = [a.frame(k) for k in range(3 * NOISE_BLOCK)]
    assert len(set(frames)) == len(frames)  # the signature tells cycled noise apart
    assert not set(frames) & {b.frame(k) for k in range(3 * NOISE_BLOCK)}  # and calls apart
    assert all(np.any(codec.decode(f)) for f in frames)
    assert frames == [
        SignatureTables(codec).noise_talk(42).frame(k) for k in range(3 * NOISE_BLOCK)
    ]
    # The wire frame is the PCM frame of talk_pcm (what verification rebuilds).
    assert np.array_equal(codec.decode(frames[77]), talk_pcm(42, 8000, 77))
    k = 5 + (3 << 10)  # both halves of the signature in use
    sig = codec.decode(a.frame(k))[:SIGNATURE_SAMPLES]
    assert int(sum(1 << i for i, v in enumerate(sig) if v > 0)) == k


@pytest.mark.parametrize(
    ("name", "rate"), [("pcm_s16le", 8000), ("pcm_s16le", 16000), ("pcmu", 8000)]
)
def test_talk_frames_are_talk_pcm_on_the_wire_before_and_after_20_s(name: str, rate: int) -> None:
    # Frames below 2**10 take a precomputed path: both paths must give talk_pcm's frame.
    codec = wire_codec(name, rate)
    talk = SignatureTables(codec).noise_talk(7)
    for k in (0, 1, 49, 50, 51, 1023, 1024, 1025, 2047, 2048, 5000, (1 << 20) - 1):
        assert talk.frame(k) == codec.encode(talk_pcm(7, rate, k)), k


def test_g711_talk_is_expected_as_the_server_decodes_it() -> None:
    codec = wire_codec("pcmu", 8000)
    talk = SignatureTables(codec).noise_talk(9)
    expected = expected_talk(codec, 120, 9, None)
    for k in (0, 1, 60, 119):
        wire = np.frombuffer(talk.frame(k), dtype=np.uint8)
        assert np.array_equal(expected[k], ulaw_decode(wire))
        # Lossy: the decoded audio is close to, not equal to, what was generated.
        original = talk_pcm(9, 8000, k)
        assert not np.array_equal(expected[k], original)
        assert np.max(np.abs(expected[k].astype(int) - original)) < 700
        assert np.array_equal(ulaw_encode(expected[k]), wire)
    # The signature survives companding: frames stay unique.
    assert len({e.tobytes() for e in expected}) == 120


@pytest.mark.parametrize(
    "codec", [WireCodec("pcmu", 8000), WireCodec("pcma", 8000), WireCodec("pcm_s16le", 16000)]
)
@pytest.mark.parametrize("digit", ["1", "2", "9", "#"])
def test_in_band_tones_are_detected_after_the_codec(codec: WireCodec, digit: str) -> None:
    frames = dtmf_frames(codec, digit, duration_ms=100, level_dbm0=-10)
    assert len(frames) == 8  # 100 ms of tone and 60 ms of gap, in 20 ms frames
    pcm = np.concatenate([codec.decode(f) for f in frames])
    silence = heard(codec, np.zeros(codec.samples_per_frame, dtype=np.int16))
    assert np.all(pcm[-codec.samples_per_frame * 2 :] == silence[0])  # the gap is silence
    found = detect(pcm, codec.sample_rate)
    assert [d for d, _ in found] == [digit]
    assert found[0][1] < codec.samples_per_frame  # the tone starts in the first frame


def test_a_law_silence_is_not_digital_zero() -> None:
    """G.711 A-law has no zero level: the callers' silence decodes to +8 (verification knows)."""
    zeros = np.zeros(160, dtype=np.int16)
    assert set(heard(WireCodec("pcma", 8000), zeros)) == {8}
    assert set(heard(WireCodec("pcmu", 8000), zeros)) == {0}


def test_talk_noise_is_not_taken_for_dtmf() -> None:
    codec = wire_codec("pcmu", 8000)
    talk = SignatureTables(codec).noise_talk(1)
    pcm = np.concatenate([codec.decode(talk.frame(k)) for k in range(500)])
    assert detect(pcm, 8000) == []


def test_a_talk_file_is_cut_into_frames_and_cycled() -> None:
    codec = wire_codec("pcm_s16le", 8000)
    pcm = (np.arange(400) + 1).astype(np.int16)  # 2.5 frames: the half frame is dropped
    talk = file_talk(codec, pcm)
    assert talk.frame(0) == talk.frame(2) != talk.frame(1)
    assert np.array_equal(codec.decode(talk.frame(1)), pcm[160:320])
    assert [e.tobytes() for e in expected_talk(codec, 3, None, pcm)] == [
        talk.frame(k) for k in range(3)
    ]
