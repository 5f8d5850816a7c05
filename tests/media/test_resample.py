"""Resampling: lengths, passband flatness, alias and image rejection, streaming continuity."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from media.errors import UnsupportedRate
from media.frame import Pcm, samples_per_frame
from media.resample import StreamResampler, resample

PAIRS = [
    (8000, 16000),
    (16000, 8000),
    (8000, 48000),
    (48000, 8000),
    (16000, 48000),
    (48000, 16000),
    (22050, 16000),
    (22050, 8000),
]
pair_ids = [f"{a}-{b}" for a, b in PAIRS]
AMPLITUDE = 10_000.0


def tone(hz: float, sample_rate: int, seconds: float = 0.5, amplitude: float = AMPLITUDE) -> Pcm:
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return np.rint(amplitude * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def level(y: Pcm, hz: float, sample_rate: int) -> float:
    """Amplitude of the ``hz`` component over the middle half of ``y`` (least squares)."""
    middle = y[len(y) // 4 : 3 * len(y) // 4].astype(np.float64)
    t = (np.arange(len(middle)) + len(y) // 4) / sample_rate
    basis = np.stack([np.sin(2 * np.pi * hz * t), np.cos(2 * np.pi * hz * t)], axis=1)
    coefficients, *_ = np.linalg.lstsq(basis, middle, rcond=None)
    return float(np.hypot(*coefficients))


def db(ratio: float) -> float:
    return 20 * math.log10(max(ratio, 1e-12))


def rms(y: npt.NDArray[np.int16]) -> float:
    middle = y[len(y) // 4 : 3 * len(y) // 4].astype(np.float64)
    return float(np.sqrt(np.mean(middle**2)))


@pytest.mark.parametrize(("from_rate", "to_rate"), PAIRS, ids=pair_ids)
@pytest.mark.parametrize("length", [0, 1, 7, 159, 160, 161, 441, 1000, 22050])
def test_length_is_rounded_ratio(from_rate: int, to_rate: int, length: int) -> None:
    x = np.zeros(length, dtype=np.int16)
    y = resample(x, from_rate, to_rate)
    assert y.dtype == np.int16
    assert len(y) == math.floor(length * to_rate / from_rate + 0.5)


def test_same_rate_is_a_copy() -> None:
    x = tone(1000, 8000)
    y = resample(x, 8000, 8000)
    assert np.array_equal(x, y)
    assert y is not x


@pytest.mark.parametrize(("from_rate", "to_rate"), PAIRS, ids=pair_ids)
@pytest.mark.parametrize("fraction", [0.05, 0.25, 0.5, 0.7, 0.85])
def test_passband_tone_loses_under_half_a_db(from_rate: int, to_rate: int, fraction: float) -> None:
    """Up to 85% of the lower Nyquist frequency (3400 Hz at 8 kHz): flat."""
    hz = fraction * min(from_rate, to_rate) / 2
    y = resample(tone(hz, from_rate), from_rate, to_rate)
    loss = db(level(y, hz, to_rate) / AMPLITUDE)
    assert abs(loss) < 0.5
    assert abs(loss) < 0.05  # in fact flat to a twentieth of a dB


@pytest.mark.parametrize(
    ("from_rate", "to_rate", "hz"),
    [
        (16000, 8000, 6000.0),
        (16000, 8000, 4100.0),
        (16000, 8000, 7900.0),
        (48000, 8000, 10000.0),
        (48000, 8000, 4500.0),
        (48000, 16000, 12000.0),
        (48000, 16000, 20000.0),
        (22050, 16000, 9000.0),
        (22050, 8000, 5000.0),
        (22050, 8000, 10000.0),
    ],
)
def test_alias_band_tone_is_attenuated_over_40_db(from_rate: int, to_rate: int, hz: float) -> None:
    """Above the output's Nyquist frequency a tone would fold back; the filter removes it."""
    y = resample(tone(hz, from_rate), from_rate, to_rate)
    alias = abs(hz - to_rate * round(hz / to_rate))
    assert db(level(y, alias, to_rate) / AMPLITUDE) < -40
    assert db(rms(y) * math.sqrt(2) / AMPLITUDE) < -40


@pytest.mark.parametrize(("from_rate", "to_rate"), [(8000, 16000), (8000, 48000), (16000, 48000)])
def test_upsampling_leaves_no_image_above_the_band(from_rate: int, to_rate: int) -> None:
    hz = 1000.0
    y = resample(tone(hz, from_rate, seconds=1.0), from_rate, to_rate).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    freqs = np.fft.rfftfreq(len(y), 1 / to_rate)
    peak = spectrum.max()
    assert freqs[spectrum.argmax()] == pytest.approx(hz, abs=2)
    images = spectrum[freqs > from_rate / 2]
    assert db(float(images.max() / peak)) < -60


@pytest.mark.parametrize(("from_rate", "to_rate"), PAIRS, ids=pair_ids)
def test_output_is_not_delayed(from_rate: int, to_rate: int) -> None:
    """Sample n of the output is the signal at n / to_rate: it matches the sine sampled directly."""
    hz = 0.3 * min(from_rate, to_rate) / 2
    y = resample(tone(hz, from_rate), from_rate, to_rate).astype(np.float64)
    expected = tone(hz, to_rate).astype(np.float64)[: len(y)]
    middle = slice(len(y) // 4, 3 * len(y) // 4)
    assert np.abs(y[middle] - expected[middle]).max() < 0.002 * AMPLITUDE


def test_overshoot_is_clipped_not_wrapped() -> None:
    square = np.where(np.sin(2 * np.pi * 300 * np.arange(8000) / 48000) >= 0, 32767, -32768)
    y = resample(square.astype(np.int16), 48000, 8000)
    reference = np.sin(2 * np.pi * 300 * np.arange(len(y)) / 8000)
    strong = np.abs(reference) > 0.5
    assert (np.sign(y[strong]) == np.sign(reference[strong])).all()
    assert y.max() == 32767
    assert y.min() == -32768


def test_unsupported_rates_are_refused() -> None:
    with pytest.raises(UnsupportedRate):
        resample(np.zeros(10, dtype=np.int16), 0, 8000)
    with pytest.raises(UnsupportedRate):
        StreamResampler(8000, -16000)


# --- streaming ----------------------------------------------------------------


def stream(x: Pcm, resampler: StreamResampler, frame: int) -> list[Pcm]:
    return [resampler.process(x[i : i + frame]) for i in range(0, len(x), frame)]


@pytest.mark.parametrize(("from_rate", "to_rate"), [(8000, 16000), (16000, 8000)])
def test_stream_turns_20ms_frames_into_20ms_frames(from_rate: int, to_rate: int) -> None:
    resampler = StreamResampler(from_rate, to_rate)
    x = tone(700, from_rate, seconds=0.4)
    outputs = stream(x, resampler, samples_per_frame(from_rate))
    assert {len(out) for out in outputs} == {samples_per_frame(to_rate)}
    assert all(out.dtype == np.int16 for out in outputs)
    assert 0 < resampler.delay_samples < to_rate * 5 // 1000  # under 5 ms


@pytest.mark.parametrize(("from_rate", "to_rate"), [(8000, 16000), (16000, 8000)])
def test_stream_equals_whole_signal_delayed(from_rate: int, to_rate: int) -> None:
    rng = np.random.default_rng(1)
    x = np.clip(rng.normal(0, 6000, from_rate), -32768, 32767).astype(np.int16)
    resampler = StreamResampler(from_rate, to_rate)
    streamed = np.concatenate(stream(x, resampler, samples_per_frame(from_rate)))
    whole = resample(x, from_rate, to_rate)
    delay = resampler.delay_samples
    assert len(streamed) == len(whole)
    difference = streamed[delay:].astype(int) - whole[: len(whole) - delay].astype(int)
    assert np.abs(difference).max() <= 1


@pytest.mark.parametrize(("from_rate", "to_rate"), [(8000, 16000), (16000, 8000)])
def test_stream_frames_join_without_a_click(from_rate: int, to_rate: int) -> None:
    hz = 1000.0
    resampler = StreamResampler(from_rate, to_rate)
    outputs = stream(tone(hz, from_rate, seconds=1.0), resampler, samples_per_frame(from_rate))
    y = np.concatenate(outputs).astype(np.float64)[to_rate // 10 : -to_rate // 10]
    # A sine's sample-to-sample step is at most 2 pi f A / fs; a click would exceed it.
    assert np.abs(np.diff(y)).max() <= 2 * np.pi * hz * AMPLITUDE / to_rate * 1.01 + 2
    # And the joined frames are the tone, at full level, delayed by delay_samples.
    t = (np.arange(len(y)) + to_rate // 10 - resampler.delay_samples) / to_rate
    expected = AMPLITUDE * np.sin(2 * np.pi * hz * t)
    assert np.abs(y - expected).max() < 0.002 * AMPLITUDE


def test_stream_of_uneven_frames_carries_the_remainder() -> None:
    rng = np.random.default_rng(2)
    x = np.clip(rng.normal(0, 6000, 4410), -32768, 32767).astype(np.int16)
    resampler = StreamResampler(22050, 16000)
    pieces = stream(x, resampler, 441 - 17)
    streamed = np.concatenate(pieces)
    assert len(streamed) == 4410 * 16000 // 22050
    whole = resample(x, 22050, 16000)
    delay = resampler.delay_samples
    difference = streamed[delay:].astype(int) - whole[: len(streamed) - delay].astype(int)
    assert np.abs(difference).max() <= 1


@settings(max_examples=30, deadline=None)
@given(
    st.sampled_from([(8000, 16000), (16000, 8000), (22050, 8000)]),
    hnp.arrays(np.int16, st.integers(1, 2000), elements=st.integers(-32768, 32767)),
    st.lists(st.integers(1, 500), min_size=1, max_size=8),
)
def test_any_split_of_a_stream_gives_the_same_output(
    rates: tuple[int, int], x: Pcm, cuts: list[int]
) -> None:
    from_rate, to_rate = rates
    bounds = np.unique(np.clip(np.cumsum(cuts), 0, len(x))).tolist()
    resampler = StreamResampler(from_rate, to_rate)
    streamed = np.concatenate([resampler.process(p) for p in np.split(x, bounds)])
    one_go = StreamResampler(from_rate, to_rate).process(x)
    assert len(streamed) == len(x) * (to_rate // math.gcd(from_rate, to_rate)) // (
        from_rate // math.gcd(from_rate, to_rate)
    )
    assert np.abs(streamed.astype(int) - one_go.astype(int)).max(initial=0) <= 1


# -- espeak-ng's rate to the prompts' (ivr.speech.tts renders the shipped prompts with it) --


def test_espeak_rate_keeps_a_tone_in_band() -> None:
    rate_in, rate_out = 22050, 16000
    t = np.arange(rate_in) / rate_in
    x = np.rint(10000.0 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.int16)
    y = resample(x, rate_in, rate_out).astype(np.float64)
    assert y.size == rate_out
    middle = y[2000:14000]  # away from the zero-padded ends
    t_out = np.arange(2000, 14000) / rate_out
    assert float(2.0 * np.abs(np.mean(middle * np.exp(-2j * np.pi * 1000.0 * t_out)))) == (
        pytest.approx(10000.0, rel=0.01)
    )
    expected = 10000.0 * np.sin(2 * np.pi * 1000.0 * t_out)
    assert float(np.max(np.abs(middle - expected))) < 20.0


def test_espeak_rate_removes_what_would_alias() -> None:
    """10 kHz is above the 8 kHz Nyquist of 16 kHz: it must not fold to 6 kHz."""
    rate_in, rate_out = 22050, 16000
    t = np.arange(rate_in) / rate_in
    x = np.rint(10000.0 * np.sin(2 * np.pi * 10000.0 * t)).astype(np.int16)
    y = resample(x, rate_in, rate_out).astype(np.float64)[2000:14000]
    t_out = np.arange(2000, 14000) / rate_out
    assert float(2.0 * np.abs(np.mean(y * np.exp(-2j * np.pi * 6000.0 * t_out)))) < (
        10000.0 * 10 ** (-60 / 20)
    )
    assert float(np.max(np.abs(y))) < 10.0
