"""DTMF generation and in-band detection: conformance to ITU-T Q.23/Q.24, talk-off, API.

The conformance cases follow Q.24 as Asterisk's dsp.c and spandsp test it:
every digit at nominal and +-1.5% frequency, 40 ms and longer, twist up to
8 dB normal and 4 dB reverse, 15 dB SNR, -26 to 0 dBm0 must be detected;
offsets beyond 3.5%, 20 ms and shorter, single frequencies, excess twist and
low levels must not. Every case runs at 8000 and 16000 Hz, over many
alignments of the tone against the 20 ms frames, all calls of a case in one
batch as the media clock would feed them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from media import dtmf, g711
from media.errors import BadFrame, MediaError, UnknownDigit, UnknownKey
from media.frame import Pcm, samples_per_frame
from tests.media.conftest import SPEECH_DBM0, Utterance

RATES = [8000, 16000]
ALL = dtmf.DIGITS
LEADS = 6  # alignments of each tone against the frames, per digit


@dataclass(frozen=True, slots=True)
class Heard:
    """A digit as one call's stream saw it: onset and report times in samples of that stream."""

    digit: str
    onset: int
    reported: int  # end of the frame whose process() returned it


def run_calls(
    signals: list[Pcm],
    sample_rate: int,
    frame_ms: int = 20,
    detector: dtmf.DtmfDetector | None = None,
) -> list[list[Heard]]:
    """Feed each signal as one call, all calls in one batch per frame, then 100 ms of silence."""
    frame = sample_rate * frame_ms // 1000
    length = max(len(s) for s in signals) + sample_rate // 10
    length += -length % frame
    batch = np.zeros((len(signals), length), dtype=np.int16)
    for row, signal in enumerate(signals):
        batch[row, : len(signal)] = signal
    if detector is None:
        detector = dtmf.DtmfDetector(sample_rate)
    keys = np.arange(len(signals), dtype=np.int64) * 3 + 1  # not 0..n-1: keys are the caller's
    for key in keys.tolist():
        detector.add(key)
    heard: list[list[Heard]] = [[] for _ in signals]
    for start in range(0, length, frame):
        for event in detector.process(keys, batch[:, start : start + frame]):
            heard[(event.key - 1) // 3].append(
                Heard(event.digit, start + event.onset, start + frame)
            )
    return heard


def lead_in(index: int, sample_rate: int) -> Pcm:
    """Silence before a tone: 60 ms plus a step that walks the onset across a 20 ms frame."""
    frame = samples_per_frame(sample_rate)
    steps = 37  # prime, so consecutive cases land on different phases
    return np.zeros(3 * frame + (index * frame) // steps % frame + index % 3, dtype=np.int16)


def with_noise(x: Pcm, snr_db: float, rng: np.random.Generator, reference: Pcm) -> Pcm:
    """``x`` plus white noise ``snr_db`` below the power of ``reference``."""
    power = float(np.mean(reference.astype(np.float64) ** 2))
    noise = rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), len(x))
    return np.clip(np.rint(x + noise), -32768, 32767).astype(np.int16)


def tone_cases(
    sample_rate: int,
    duration_ms: int = 40,
    leads: int = LEADS,
    snr_db: float | None = None,
    seed: int = 0,
    **kwargs: Any,
) -> tuple[list[Pcm], list[str], list[int]]:
    """Every digit, ``leads`` alignments each: (signals, digits, onset sample of each tone)."""
    rng = np.random.default_rng(seed)
    signals, digits, onsets = [], [], []
    for i in range(16 * leads):
        digit = ALL[i % 16]
        tone = dtmf.generate(digit, duration_ms, sample_rate, **kwargs)
        lead = lead_in(i, sample_rate)
        x = np.concatenate([lead, tone, np.zeros(sample_rate // 10, dtype=np.int16)])
        if snr_db is not None:
            x = with_noise(x, snr_db, rng, tone)
        signals.append(x)
        digits.append(digit)
        onsets.append(len(lead))
    return signals, digits, onsets


def assert_each_heard_once(
    sample_rate: int,
    heard: list[list[Heard]],
    digits: list[str],
    onsets: list[int],
    onset_tolerance: int | None = None,
) -> None:
    block = sample_rate // 100
    tolerance = block if onset_tolerance is None else onset_tolerance
    wrong = [(d, h) for d, h in zip(digits, heard, strict=True) if [x.digit for x in h] != [d]]
    assert not wrong, f"{len(wrong)} of {len(digits)} tones not heard exactly once: {wrong[:6]}"
    errors = [h[0].onset - onset for h, onset in zip(heard, onsets, strict=True)]
    assert max(abs(e) for e in errors) <= tolerance, f"onset errors (samples): {sorted(errors)}"


def assert_none_heard(heard: list[list[Heard]], what: str) -> None:
    false = [h for h in heard if h]
    assert not false, f"{what}: {len(false)} of {len(heard)} falsely detected: {false[:6]}"


# --- generation -----------------------------------------------------------------


def spectrum_peaks(
    x: Pcm, sample_rate: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Magnitudes and frequencies of the rfft of ``x`` (1 Hz bins for one second)."""
    magnitudes: npt.NDArray[np.float64] = np.abs(np.fft.rfft(x.astype(np.float64)))
    freqs = np.fft.rfftfreq(len(x), 1 / sample_rate).astype(np.float64)
    return magnitudes, freqs


def tone_levels(x: Pcm, low: float, high: float, sample_rate: int) -> tuple[float, float]:
    """Least-squares amplitudes of the two tones in ``x``, in dBm0."""
    t = np.arange(len(x)) / sample_rate
    columns = [f(2 * np.pi * hz * t) for hz in (low, high) for f in (np.sin, np.cos)]
    c, *_ = np.linalg.lstsq(np.stack(columns, axis=1), x.astype(np.float64), rcond=None)
    amplitudes = np.hypot(c[0], c[1]), np.hypot(c[2], c[3])
    low_db, high_db = (20 * np.log10(a / dtmf.DBM0_PEAK) for a in amplitudes)
    return float(low_db), float(high_db)


def test_keypad_frequencies_are_q23() -> None:
    assert dtmf.frequencies("1") == (697.0, 1209.0)
    assert dtmf.frequencies("5") == (770.0, 1336.0)
    assert dtmf.frequencies("9") == (852.0, 1477.0)
    assert dtmf.frequencies("D") == (941.0, 1633.0)
    assert dtmf.frequencies("0") == (941.0, 1336.0)
    assert dtmf.frequencies("*") == (941.0, 1209.0)
    assert dtmf.frequencies("#") == (941.0, 1477.0)
    assert dtmf.frequencies("a") == dtmf.frequencies("A")


@pytest.mark.parametrize("bad", ["E", "", "12", " ", "x"])
def test_unknown_digit_is_refused(bad: str) -> None:
    with pytest.raises(UnknownDigit):
        dtmf.generate(bad, 40, 8000)
    assert issubclass(UnknownDigit, MediaError)
    assert issubclass(UnknownDigit, ValueError)


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("duration_ms", [1, 20, 40, 95, 1000])
def test_generated_length(sample_rate: int, duration_ms: int) -> None:
    x = dtmf.generate("5", duration_ms, sample_rate)
    assert x.dtype == np.int16
    assert len(x) == sample_rate * duration_ms // 1000


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("digit", list(ALL))
def test_generated_spectrum_has_exactly_the_digits_two_frequencies(
    sample_rate: int, digit: str
) -> None:
    magnitudes, freqs = spectrum_peaks(dtmf.generate(digit, 1000, sample_rate), sample_rate)
    order = np.argsort(magnitudes)[::-1]
    assert sorted(freqs[order[:2]].tolist()) == list(dtmf.frequencies(digit))
    # Everything else is rounding noise, 70 dB down.
    assert magnitudes[order[2]] < magnitudes[order[1]] * 10 ** (-70 / 20)


@pytest.mark.parametrize("offset", [0.015, -0.015, 0.035, -0.05])
def test_frequency_offset_moves_both_tones(offset: float) -> None:
    x = dtmf.generate("8", 1000, 8000, freq_offset=offset)
    low, high = (f * (1 + offset) for f in dtmf.frequencies("8"))
    low_db, high_db = tone_levels(x, low, high, 8000)
    assert low_db == pytest.approx(-13.01, abs=0.01)
    assert high_db == pytest.approx(-13.01, abs=0.01)
    magnitudes, freqs = spectrum_peaks(x, 8000)
    peaks = sorted(freqs[np.argsort(magnitudes)[-2:]].tolist())
    assert peaks[0] == pytest.approx(low, abs=1)
    assert peaks[1] == pytest.approx(high, abs=1)


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize(
    ("level", "twist"), [(-10, 0), (0, 0), (0, 8), (0, -8), (-26, 4), (-20, -4)]
)
def test_generated_level_and_twist(sample_rate: int, level: float, twist: float) -> None:
    """Level is the pair's total power in dBm0; twist is low-group minus high-group level."""
    x = dtmf.generate("6", 500, sample_rate, level_dbm0=level, twist_db=twist)
    low_db, high_db = tone_levels(x, *dtmf.frequencies("6"), sample_rate)
    total = 10 * np.log10(10 ** (low_db / 10) + 10 ** (high_db / 10))
    assert total == pytest.approx(level, abs=0.02)
    assert low_db - high_db == pytest.approx(twist, abs=0.02)
    assert np.abs(x.astype(np.int32)).max() < 32767  # 0 dBm0 with 8 dB twist does not clip


def test_dbm0_reference_is_the_g711_digital_milliwatt() -> None:
    """G.711 Table 5: the mu-law digital milliwatt is a 0 dBm0 sine at 1 kHz."""
    codes = np.array([0x1E, 0x0B, 0x0B, 0x1E, 0x9E, 0x8B, 0x8B, 0x9E] * 1000, dtype=np.uint8)
    x = g711.ulaw_decode(codes).astype(np.float64)
    amplitude = np.sqrt(2 * np.mean(x**2))
    assert 20 * np.log10(amplitude / dtmf.DBM0_PEAK) == pytest.approx(0.0, abs=0.05)
    assert pytest.approx(22657, abs=1) == dtmf.DBM0_PEAK


def test_generate_sequence_lays_tones_and_gaps() -> None:
    x = dtmf.generate_sequence("1#9", tone_ms=50, gap_ms=30, sample_rate=8000)
    assert len(x) == 3 * 640
    for i, digit in enumerate("1#9"):
        start = i * 640
        assert np.array_equal(x[start : start + 400], dtmf.generate(digit, 50, 8000))
        assert not x[start + 400 : start + 640].any()
    assert len(dtmf.generate_sequence("", 50, 50, 8000)) == 0


# --- detection: what must be heard ----------------------------------------------------


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("offset", [0.0, 0.015, -0.015])
def test_every_digit_at_nominal_and_offset_frequencies(sample_rate: int, offset: float) -> None:
    signals, digits, onsets = tone_cases(sample_rate, 40, freq_offset=offset)
    heard = run_calls(signals, sample_rate)
    assert_each_heard_once(sample_rate, heard, digits, onsets, onset_tolerance=sample_rate // 400)


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("duration_ms", [40, 45, 60, 100, 250])
def test_tones_of_40ms_and_longer(sample_rate: int, duration_ms: int) -> None:
    signals, digits, onsets = tone_cases(sample_rate, duration_ms, leads=8, freq_offset=0.012)
    assert_each_heard_once(sample_rate, run_calls(signals, sample_rate), digits, onsets)


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("twist", [8.0, 6.0, 3.0, -2.0, -4.0])
def test_twist_up_to_8db_normal_and_4db_reverse(sample_rate: int, twist: float) -> None:
    for offset in (0.0, 0.015, -0.015):
        signals, digits, onsets = tone_cases(sample_rate, 40, twist_db=twist, freq_offset=offset)
        assert_each_heard_once(sample_rate, run_calls(signals, sample_rate), digits, onsets)


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("level", list(range(-26, 1, 2)))
def test_levels_from_minus_26_to_0_dbm0(sample_rate: int, level: int) -> None:
    signals, digits, onsets = tone_cases(sample_rate, 40, leads=2, level_dbm0=level)
    assert_each_heard_once(sample_rate, run_calls(signals, sample_rate), digits, onsets)


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize(
    "condition",
    [
        {},
        {"freq_offset": 0.015},
        {"freq_offset": -0.015},
        {"twist_db": 8.0},
        {"twist_db": -4.0},
        {"level_dbm0": -26.0},
        {"level_dbm0": 0.0},
    ],
    ids=["nominal", "+1.5%", "-1.5%", "twist+8", "twist-4", "-26dBm0", "0dBm0"],
)
def test_white_noise_at_15db_snr(sample_rate: int, condition: dict[str, Any]) -> None:
    signals, digits, onsets = tone_cases(sample_rate, 40, snr_db=15.0, seed=11, **condition)
    assert_each_heard_once(sample_rate, run_calls(signals, sample_rate), digits, onsets)


@pytest.mark.parametrize("sample_rate", RATES)
def test_a_digit_held_2s_is_one_digit(sample_rate: int) -> None:
    signals, digits, onsets = tone_cases(sample_rate, 2000, leads=1)
    assert_each_heard_once(sample_rate, run_calls(signals, sample_rate), digits, onsets)
    # Held through noise that makes single blocks fail the tests for a new digit.
    noisy, digits, onsets = tone_cases(
        sample_rate, 2000, leads=1, snr_db=10.0, twist_db=8.0, seed=3
    )
    assert_each_heard_once(sample_rate, run_calls(noisy, sample_rate), digits, onsets)
    quiet, digits, onsets = tone_cases(
        sample_rate, 2000, leads=1, snr_db=15.0, level_dbm0=-29.0, seed=4
    )
    assert_each_heard_once(sample_rate, run_calls(quiet, sample_rate), digits, onsets)


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("snr_db", [None, 15.0])
def test_a_50ms_gap_separates_two_digits(sample_rate: int, snr_db: float | None) -> None:
    """Ten digits per second (50 ms on, 50 ms off), repeated digits included."""
    rng = np.random.default_rng(5)
    sequences = ["0123456789*#ABCD", "11", "1111", "1212", "DDDD", "5555555555", "*#*#"]
    signals, expected = [], []
    for i, digits in enumerate(sequences * 3):
        x = np.concatenate(
            [lead_in(i, sample_rate), dtmf.generate_sequence(digits, 50, 50, sample_rate)]
        )
        if snr_db is not None:
            x = with_noise(x, snr_db, rng, dtmf.generate("5", 50, sample_rate))
        signals.append(x)
        expected.append(digits)
    heard = run_calls(signals, sample_rate)
    assert ["".join(h.digit for h in hs) for hs in heard] == expected


@pytest.mark.parametrize("sample_rate", RATES)
def test_digits_without_a_gap_are_each_reported(sample_rate: int) -> None:
    x = np.concatenate([dtmf.generate(d, 60, sample_rate) for d in "1234D#"])
    assert "".join(d for d, _ in dtmf.detect(x, sample_rate)) == "1234D#"


@pytest.mark.parametrize("sample_rate", RATES)
def test_onset_to_event_delay_is_at_most_45ms(sample_rate: int) -> None:
    """Over every alignment with the frames: the report leaves with the frame that
    completes the tone's evidence, no more than 45 ms after its first sample."""
    frame = samples_per_frame(sample_rate)
    signals, digits, onsets = [], [], []
    rng = np.random.default_rng(2)
    for phase in range(0, frame, max(1, frame // 80)):
        digit = ALL[phase % 16]
        tone = dtmf.generate(digit, 40, sample_rate, freq_offset=rng.uniform(-0.015, 0.015))
        lead = np.zeros(3 * frame + phase, dtype=np.int16)
        signals.append(np.concatenate([lead, tone]))
        digits.append(digit)
        onsets.append(len(lead))
    heard = run_calls(signals, sample_rate)
    assert_each_heard_once(sample_rate, heard, digits, onsets, onset_tolerance=sample_rate // 400)
    delays_ms = [
        (h[0].reported - onset) * 1000 / sample_rate for h, onset in zip(heard, onsets, strict=True)
    ]
    assert max(delays_ms) <= 45.0
    assert min(delays_ms) >= 23.0  # never before the tone could be known to last


@pytest.mark.parametrize("sample_rate", RATES)
def test_every_onset_lies_within_the_detection_delay(sample_rate: int) -> None:
    """A recorder holding DETECTION_DELAY_FRAMES frames back reaches every tone's first sample.

    Over the accepted Q.24 cases (offsets, twist, levels, noise), each digit is
    reported with an onset no further back than that many frames before the
    reporting frame; and one frame fewer would not do, so the delay line is the
    shortest that masks every tone from its start.
    """
    frame = samples_per_frame(sample_rate)
    conditions: list[dict[str, Any]] = [
        {},
        {"freq_offset": 0.015},
        {"freq_offset": -0.015},
        {"twist_db": 8.0},
        {"twist_db": -4.0},
        {"level_dbm0": -26.0},
        {"level_dbm0": 0.0},
        {"snr_db": 15.0, "seed": 3},
    ]
    reach = []  # samples from the reporting frame's start back to the onset
    for duration_ms in (40, 200):
        for condition in conditions:
            signals, digits, _ = tone_cases(sample_rate, duration_ms, leads=3, **condition)
            heard = run_calls(signals, sample_rate)
            assert sum(len(h) for h in heard) >= len(digits) - 1, condition
            reach += [(h.reported - frame) - h.onset for calls in heard for h in calls]
    assert max(reach) <= dtmf.DETECTION_DELAY_FRAMES * frame
    assert max(reach) > (dtmf.DETECTION_DELAY_FRAMES - 1) * frame
    assert dtmf.REPORT_DELAY_MS <= 45.0


# --- detection: what must not be heard --------------------------------------------------


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("offset", [0.035, -0.035, 0.04, -0.045, 0.05, -0.055, 0.06, -0.06])
def test_offsets_beyond_3_5_percent_are_rejected(sample_rate: int, offset: float) -> None:
    signals, _, _ = tone_cases(sample_rate, 100, leads=2, freq_offset=offset)
    assert_none_heard(run_calls(signals, sample_rate), f"{offset:+.1%} offset")


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("offset", [0.105, -0.095])
def test_a_tenth_off_is_the_neighbouring_digit_or_nothing(sample_rate: int, offset: float) -> None:
    """Q.23's frequencies are ~10.5% apart: shifted that far, a digit's tones are another's."""
    signals, digits, _ = tone_cases(sample_rate, 100, leads=1, freq_offset=offset)
    heard = run_calls(signals, sample_rate)
    for digit, h in zip(digits, heard, strict=True):
        low, high = (f * (1 + offset) for f in dtmf.frequencies(digit))
        neighbours = [
            d
            for d in ALL
            if abs(dtmf.frequencies(d)[0] / low - 1) < 0.015
            and abs(dtmf.frequencies(d)[1] / high - 1) < 0.015
        ]
        assert [x.digit for x in h] == neighbours


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize(
    ("low_offset", "high_offset"), [(0.035, 0), (-0.035, 0), (0, 0.035), (0, -0.035)]
)
def test_one_tone_off_by_3_5_percent_is_rejected(
    sample_rate: int, low_offset: float, high_offset: float
) -> None:
    signals = []
    for i, digit in enumerate(ALL * 2):
        low, high = dtmf.frequencies(digit)
        tone = dtmf.tone_pair(low * (1 + low_offset), high * (1 + high_offset), 100, sample_rate)
        signals.append(np.concatenate([lead_in(i, sample_rate), tone]))
    assert_none_heard(run_calls(signals, sample_rate), "one tone off frequency")


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("duration_ms", [5, 10, 15, 20])
def test_tones_of_20ms_or_shorter_are_rejected(sample_rate: int, duration_ms: int) -> None:
    conditions: list[dict[str, Any]] = [
        {},
        {"level_dbm0": 0.0},
        {"twist_db": 6.0, "freq_offset": 0.01},
    ]
    for condition in conditions:
        signals, _, _ = tone_cases(sample_rate, duration_ms, leads=12, **condition)
        assert_none_heard(run_calls(signals, sample_rate), f"{duration_ms} ms {condition}")
    noisy, _, _ = tone_cases(sample_rate, duration_ms, leads=12, snr_db=15.0, seed=4)
    assert_none_heard(run_calls(noisy, sample_rate), f"{duration_ms} ms in noise")


@pytest.mark.parametrize("sample_rate", RATES)
def test_a_single_frequency_is_never_a_digit(sample_rate: int) -> None:
    t = np.arange(sample_rate // 2) / sample_rate
    signals = []
    for hz in dtmf.LOW_GROUP_HZ + dtmf.HIGH_GROUP_HZ:
        for level in (0.0, -10.0, -25.0):
            for offset in (0.0, 0.015):
                amplitude = dtmf.DBM0_PEAK * 10 ** (level / 20)
                x = amplitude * np.sin(2 * np.pi * hz * (1 + offset) * t)
                signals.append(np.rint(x).astype(np.int16))
    assert_none_heard(run_calls(signals, sample_rate), "single frequency")


@pytest.mark.parametrize("sample_rate", RATES)
def test_two_tones_of_one_group_are_never_a_digit(sample_rate: int) -> None:
    signals = []
    for group in (dtmf.LOW_GROUP_HZ, dtmf.HIGH_GROUP_HZ):
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                signals.append(dtmf.tone_pair(a, b, 300, sample_rate))
    assert_none_heard(run_calls(signals, sample_rate), "same-group pair")


def with_neighbour(digit: str, group: int, relative_db: float, sample_rate: int) -> Pcm:
    """``digit``'s tone and the next frequency of a group, ``relative_db`` from its tone there."""
    frequencies = (dtmf.LOW_GROUP_HZ, dtmf.HIGH_GROUP_HZ)[group]
    own = frequencies.index(dtmf.frequencies(digit)[group])
    other = frequencies[own + 1] if own < 3 else frequencies[own - 1]
    tone = dtmf.generate(digit, 100, sample_rate).astype(np.float64)
    t = np.arange(len(tone)) / sample_rate
    amplitude = dtmf.DBM0_PEAK * 10 ** ((-13.0 + relative_db) / 20)  # each tone is at -13 dBm0
    x = tone + amplitude * np.sin(2 * np.pi * other * t + 1.0)
    return np.concatenate([lead_in(own, sample_rate), np.rint(x).astype(np.int16)])


@pytest.mark.parametrize("sample_rate", RATES)
def test_a_second_tone_in_a_group_within_6db_is_rejected(sample_rate: int) -> None:
    """Asterisk's relative peak test: the second-strongest of a group must be clearly weaker."""
    signals = [with_neighbour(d, g, -4.0, sample_rate) for d in ALL for g in (0, 1)]
    assert_none_heard(run_calls(signals, sample_rate), "second tone at -4 dB in a group")


@pytest.mark.parametrize("sample_rate", RATES)
def test_a_second_tone_in_a_group_10db_down_is_tolerated(sample_rate: int) -> None:
    signals = [with_neighbour(d, g, -10.0, sample_rate) for d in ALL for g in (0, 1)]
    heard = run_calls(signals, sample_rate)
    assert [[h.digit for h in hs] for hs in heard] == [[d] for d in ALL for _ in (0, 1)]


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("twist", [10.0, 12.0, 20.0, -6.0, -8.0, -15.0])
def test_twist_beyond_the_limits_is_rejected(sample_rate: int, twist: float) -> None:
    signals, _, _ = tone_cases(sample_rate, 100, leads=2, twist_db=twist)
    assert_none_heard(run_calls(signals, sample_rate), f"twist {twist:+} dB")


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("level", [-35.0, -40.0, -50.0])
def test_levels_below_the_threshold_are_rejected(sample_rate: int, level: float) -> None:
    signals, _, _ = tone_cases(sample_rate, 100, leads=2, level_dbm0=level)
    assert_none_heard(run_calls(signals, sample_rate), f"{level} dBm0")


# --- talk-off ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("rate_fixture", ["speech_8k", "speech_16k"])
def test_no_talk_off_in_five_minutes_of_speech(
    rate_fixture: str, request: pytest.FixtureRequest
) -> None:
    utterances: list[Utterance] = request.getfixturevalue(rate_fixture)
    sample_rate = utterances[0].sample_rate
    assert sum(u.seconds for u in utterances) >= 300
    assert len({u.label.split()[0] for u in utterances}) >= 8  # voices
    signals = [u.pcm for u in utterances]
    # Ten frames per batch: the same results as 20 ms batches (see
    # test_longer_batches_give_the_same_digits_and_onsets), ten times fewer calls.
    heard = run_calls(signals, sample_rate, frame_ms=200)
    false = [(u.label, h) for u, h in zip(utterances, heard, strict=True) if h]
    assert not false, f"talk-off: {false}"
    if sample_rate == 8000:  # and through a mu-law line, louder, and quieter
        for gain in (0.5, 3.0):
            coded = [
                g711.ulaw_decode(
                    g711.ulaw_encode(np.clip(s * gain, -32768, 32767).astype(np.int16))
                )
                for s in signals
            ]
            assert_none_heard(run_calls(coded, sample_rate, frame_ms=200), f"speech x{gain} mu-law")


@pytest.mark.slow
def test_digits_in_speech_are_still_heard(speech_8k: list[Utterance]) -> None:
    """Not deaf: tones mixed into the speech corpus (10 dB above it) are each found once."""
    sample_rate = 8000
    signals, expected, onsets = [], [], []
    for i, utterance in enumerate(speech_8k):
        x = utterance.pcm.astype(np.float64)
        digit = ALL[i % 16]
        start = len(x) // 3 + i * 37
        tone = dtmf.generate(digit, 60, sample_rate, level_dbm0=SPEECH_DBM0 + 10)
        x[start : start + len(tone)] += tone
        signals.append(np.clip(np.rint(x), -32768, 32767).astype(np.int16))
        expected.append(digit)
        onsets.append(start)
    heard = run_calls(signals, sample_rate)
    assert_each_heard_once(sample_rate, heard, expected, onsets)


def chord(
    notes_hz: list[float], seconds: float, sample_rate: int, partials: int = 6
) -> npt.NDArray[np.float64]:
    """Notes with decaying harmonics (amplitude 1/k), plucked: a piano-like chord."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    x = np.zeros_like(t)
    for note in notes_hz:
        for k in range(1, partials + 1):
            if k * note < sample_rate / 2:
                x += np.sin(2 * np.pi * k * note * t + k) / k * np.exp(-t * (1.5 + k))
    return x


def sweep(
    start_hz: float, end_hz: float, seconds: float, sample_rate: int, partials: int = 1
) -> npt.NDArray[np.float64]:
    """A logarithmic sweep, with harmonics if ``partials`` > 1."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    k = np.log(end_hz / start_hz) / seconds
    phase = 2 * np.pi * start_hz * (np.exp(k * t) - 1) / k
    return sum((np.sin(p * phase) / p for p in range(1, partials + 1)), np.zeros_like(t))


def note(name: str) -> float:
    """Frequency of a note such as "A4" or "C#5" (equal temperament, A4 = 440 Hz)."""
    semitones = {"C": -9, "D": -7, "E": -5, "F": -4, "G": -2, "A": 0, "B": 2}
    offset = semitones[name[0]] + (1 if "#" in name else 0)
    octave = int(name[-1])
    return 440.0 * 2 ** ((offset + 12 * (octave - 4)) / 12)


def music(sample_rate: int) -> list[Pcm]:
    """Chords, arpeggios, scales, sweeps and a siren, at -10 dBm0: about 80 s in all."""
    progressions = [
        ["C4", "E4", "G4"],
        ["F4", "A4", "C5"],
        ["G4", "B4", "D5"],
        ["A4", "C#5", "E5"],
        ["D5", "F5", "A5"],
        ["E5", "G#5", "B5"],
        ["F5", "A5", "C6"],
        ["G5", "B5", "D6", "F6"],
        ["C5", "E5", "G5", "B5"],
        ["A5", "C6", "E6"],
        ["F#5", "A#5", "C#6"],
        ["D4", "F#5", "A5", "D6"],
    ]
    pieces: list[npt.NDArray[np.float64]] = []
    for notes in progressions:
        pieces.append(chord([note(n) for n in notes], 1.5, sample_rate))
        # The same chord as an arpeggio of plucked notes.
        pieces.append(np.concatenate([chord([note(n)], 0.15, sample_rate) for n in notes * 3]))
    scale = ["C5", "D5", "E5", "F5", "G5", "A5", "B5", "C6", "D6", "E6", "F6", "G6"]
    pieces.append(
        np.concatenate([chord([note(n)], 0.2, sample_rate, partials=3) for n in scale * 2])
    )
    for start, end, seconds, partials in [
        (300, 3400, 3.0, 1),
        (3400, 300, 3.0, 1),
        (200, 2000, 2.0, 4),
        (600, 1700, 6.0, 1),
        (500, 1800, 1.0, 2),
        (100, 1000, 4.0, 6),
    ]:
        pieces.append(sweep(start, end, seconds, sample_rate, partials))
    t = np.arange(4 * sample_rate) / sample_rate
    siren = 2 * np.pi * np.cumsum(1000 + 400 * np.sin(2 * np.pi * 0.5 * t)) / sample_rate
    pieces.append(np.sin(siren) + 0.5 * np.sin(2 * siren))
    signals = []
    for piece in pieces:
        peak = dtmf.DBM0_PEAK * 10 ** (-10 / 20) * np.sqrt(2)
        scaled = piece / np.sqrt(2 * np.mean(piece**2)) * peak / np.sqrt(2)
        signals.append(np.clip(np.rint(scaled), -32768, 32767).astype(np.int16))
    return signals


@pytest.mark.parametrize("sample_rate", RATES)
def test_no_talk_off_in_music(sample_rate: int) -> None:
    signals = music(sample_rate)
    assert sum(len(s) for s in signals) / sample_rate >= 60
    assert_none_heard(run_calls(signals, sample_rate, frame_ms=100), "music")


# --- API ------------------------------------------------------------------------


@pytest.mark.parametrize("sample_rate", RATES)
def test_batched_and_per_call_results_are_identical(sample_rate: int) -> None:
    rng = np.random.default_rng(9)
    signals = []
    for i in range(24):
        digits = "".join(ALL[j] for j in rng.integers(0, 16, 3))
        x = dtmf.generate_sequence(
            digits, int(rng.integers(30, 90)), int(rng.integers(30, 90)), sample_rate
        )
        x = np.concatenate([lead_in(i, sample_rate), x])
        signals.append(with_noise(x, float(rng.uniform(10, 30)), rng, x) if i % 2 else x)
    batched = run_calls(signals, sample_rate)
    looped = [run_calls([s], sample_rate)[0] for s in signals]
    assert batched == looped
    assert sum(len(h) for h in batched) >= 40


@pytest.mark.parametrize("sample_rate", RATES)
def test_longer_batches_give_the_same_digits_and_onsets(sample_rate: int) -> None:
    signals = [
        np.concatenate(
            [lead_in(i, sample_rate), dtmf.generate_sequence("159D", 60, 60, sample_rate)]
        )
        for i in range(8)
    ]
    by_frame = run_calls(signals, sample_rate, frame_ms=20)
    by_block = run_calls(signals, sample_rate, frame_ms=10)
    by_second = run_calls(signals, sample_rate, frame_ms=1000)

    def found(heard: list[list[Heard]]) -> list[list[tuple[str, int]]]:
        return [[(h.digit, h.onset) for h in hs] for hs in heard]

    assert found(by_frame) == found(by_block) == found(by_second)
    assert all("".join(d for d, _ in hs) == "159D" for hs in found(by_frame))


def test_onset_is_negative_when_the_tone_began_in_an_earlier_batch() -> None:
    detector = dtmf.DtmfDetector(8000)
    detector.add(42)
    x = np.concatenate([np.zeros(200, dtype=np.int16), dtmf.generate("7", 100, 8000)])
    x = np.concatenate([x, np.zeros(-len(x) % 160 + 320, dtype=np.int16)])
    events = []
    for start in range(0, len(x), 160):
        for event in detector.process([42], x[None, start : start + 160]):
            events.append((start, event))
    assert len(events) == 1
    start, event = events[0]
    assert event.key == 42
    assert event.digit == "7"
    assert event.onset < 0
    assert start + event.onset == pytest.approx(200, abs=2)


def test_keys_are_managed_per_call() -> None:
    detector = dtmf.DtmfDetector(8000)
    detector.add(5000)  # grows
    detector.add(3)
    assert 5000 in detector
    assert 3 in detector
    assert 4 not in detector
    assert len(detector) == 2
    with pytest.raises(UnknownKey):
        detector.add(3)
    with pytest.raises(UnknownKey):
        detector.add(-1)
    with pytest.raises(UnknownKey):
        detector.remove(4)
    with pytest.raises(UnknownKey):
        detector.process([4], np.zeros((1, 160), dtype=np.int16))
    detector.remove(3)
    with pytest.raises(UnknownKey):
        detector.process([3, 5000], np.zeros((2, 160), dtype=np.int16))
    assert issubclass(UnknownKey, MediaError)
    assert detector.process(np.zeros(0, dtype=np.int64), np.zeros((0, 160), dtype=np.int16)) == []


def test_removing_a_call_forgets_its_tone() -> None:
    detector = dtmf.DtmfDetector(8000)
    detector.add(1)
    tone = dtmf.generate("3", 200, 8000)
    assert detector.process([1], tone[None, :160]) == []
    detector.remove(1)
    detector.add(1)  # a new call under the same key: the first 20 ms are gone
    assert detector.process([1], tone[None, 160:320]) == []
    events = detector.process([1], tone[None, 320:480])
    assert [(e.key, e.digit) for e in events] == [(1, "3")]
    assert events[0].onset == pytest.approx(-160, abs=2)


@pytest.mark.parametrize("shape", [(2, 160), (1, 150), (1, 0), (160,)])
def test_frames_of_the_wrong_shape_are_refused(shape: tuple[int, ...]) -> None:
    detector = dtmf.DtmfDetector(8000)
    detector.add(0)
    with pytest.raises(BadFrame):
        detector.process([0], np.zeros(shape, dtype=np.int16))


def test_rates_that_are_not_whole_blocks_are_refused() -> None:
    with pytest.raises(BadFrame):
        dtmf.DtmfDetector(22050)


def test_detect_finds_digits_and_onsets_in_a_whole_signal() -> None:
    x = np.concatenate(
        [np.zeros(333, dtype=np.int16), dtmf.generate_sequence("42#", 70, 60, 16000)]
    )
    found = dtmf.detect(x, 16000)
    assert [d for d, _ in found] == ["4", "2", "#"]
    for (_, onset), expected in zip(found, [333, 333 + 2080, 333 + 4160], strict=True):
        assert abs(onset - expected) <= 16  # 1 ms


@pytest.mark.parametrize("rate", [8000, 16000])
def test_a_block_too_quiet_to_skip_the_product_could_not_have_passed_the_screen(rate: int) -> None:
    """The quiet bound holds for the worst signal: a digit's own pair, at any phase and twist."""
    detector = dtmf.DtmfDetector(rate)
    n = detector.block
    basis = detector._basis.astype(np.float64)
    rng = np.random.default_rng(3)
    worst = 0.0
    for _ in range(400):
        digit = dtmf.DIGITS[int(rng.integers(16))]
        low, high = dtmf.frequencies(digit)
        t = np.arange(n) / rate
        x = rng.uniform(0.2, 1.0) * np.sin(2 * np.pi * low * t + rng.uniform(0, 6.3))
        x += rng.uniform(0.2, 1.0) * np.sin(2 * np.pi * high * t + rng.uniform(0, 6.3))
        x *= np.sqrt(float(detector._quiet_energy) / float(x @ x))  # just at the bound
        c = x @ basis
        power = c[:8] ** 2 + c[8:] ** 2
        tones = power[:4].max() + power[4:].max()
        worst = max(worst, tones / detector._screen_energy)
    assert worst < 1.0  # no quiet block reaches the screen
    assert worst > 0.8  # and the bound is not so loose that loud-ish blocks are skipped
