"""G.711 mu-law and A-law: known answers from the standard, round trips, properties."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from media import g711
from media.frame import Pcm

Encoder = Callable[[Pcm], npt.NDArray[np.uint8]]
Decoder = Callable[[npt.NDArray[np.uint8]], Pcm]

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)
ALL_CODES = np.arange(256, dtype=np.uint8)
LAWS: list[tuple[str, Encoder, Decoder]] = [
    ("ulaw", g711.ulaw_encode, g711.ulaw_decode),
    ("alaw", g711.alaw_encode, g711.alaw_decode),
]
law_ids = [name for name, _, _ in LAWS]

# G.711 Table 5 and Table 6: one period of the digital milliwatt (a 1 kHz sine at 0 dBm0).
ULAW_MILLIWATT = [0x1E, 0x0B, 0x0B, 0x1E, 0x9E, 0x8B, 0x8B, 0x9E]
ALAW_MILLIWATT = [0x34, 0x21, 0x21, 0x34, 0xB4, 0xA1, 0xA1, 0xB4]


def ulaw_intervals() -> list[tuple[int, int, int]]:
    """G.711 Table 2 in 14-bit magnitudes: (first, last, decoded) of each of the 128 intervals.

    Segment s (0..7) starts at 32 * 2**s - 33 and has 16 steps of 2**(s + 1);
    the first interval of segment 0 is the half-step around zero. Each
    interval decodes to its mid-point.
    """
    intervals = []
    for segment in range(8):
        step = 2 ** (segment + 1)
        base = 32 * 2**segment - 33
        for q in range(16):
            low = max(base + q * step, 0)
            intervals.append((low, base + (q + 1) * step - 1, base + q * step + step // 2))
    return intervals


def alaw_intervals() -> list[tuple[int, int, int]]:
    """G.711 Table 1 in 12-bit magnitudes (13-bit / 2): (first, last, decoded x 2) of each interval.

    Segments 0 and 1 have 16 steps of 1 from 0 and 16; segment s >= 2 starts at
    2**(s + 3) with steps of 2**(s - 1). Decoded values are in 13-bit units.
    """
    intervals = []
    for segment in range(8):
        step = 1 if segment < 2 else 2 ** (segment - 1)
        base = 16 * segment if segment < 2 else 2 ** (segment + 3)
        for q in range(16):
            low = base + q * step
            intervals.append((low, low + step - 1, 2 * low + step))
    return intervals


def test_silence_is_ff_for_ulaw_and_d5_for_alaw() -> None:
    silence = np.zeros(160, dtype=np.int16)
    assert (g711.ulaw_encode(silence) == 0xFF).all()
    assert (g711.alaw_encode(silence) == 0xD5).all()
    assert g711.ULAW_SILENCE == 0xFF
    assert g711.ALAW_SILENCE == 0xD5
    assert g711.ulaw_decode(np.array([0xFF, 0x7F], dtype=np.uint8)).tolist() == [0, 0]
    assert g711.alaw_decode(np.array([0xD5, 0x55], dtype=np.uint8)).tolist() == [8, -8]


def test_extremes_use_the_outermost_codes() -> None:
    extremes = np.array([32767, -32768], dtype=np.int16)
    assert g711.ulaw_encode(extremes).tolist() == [0x80, 0x00]
    assert g711.alaw_encode(extremes).tolist() == [0xAA, 0x2A]
    assert g711.ulaw_decode(np.array([0x80, 0x00], dtype=np.uint8)).tolist() == [32124, -32124]
    assert g711.alaw_decode(np.array([0xAA, 0x2A], dtype=np.uint8)).tolist() == [32256, -32256]


@pytest.mark.parametrize("sign", [1, -1])
def test_ulaw_encoder_follows_table_2_for_every_input(sign: int) -> None:
    """Each 14-bit magnitude lands in its Table 2 interval: segment, step and code."""
    x = ALL_INT16[ALL_INT16 >= 0] if sign > 0 else ALL_INT16[ALL_INT16 < 0]
    magnitude = (x.astype(np.int32) if sign > 0 else -x.astype(np.int32) - 1) >> 2
    expected = np.empty(len(x), dtype=np.int32)
    for index, (low, high, _) in enumerate(ulaw_intervals()):
        expected[(magnitude >= low) & (magnitude <= high)] = index
    expected[magnitude > 8158] = 127  # beyond the last decision value: clipped
    codes = g711.ulaw_encode(x).astype(np.int32)
    # Line code: all bits inverted, sign bit set for positive values.
    sign_bit = 0x80 if sign > 0 else 0x00
    assert ((codes & 0x80) == sign_bit).all()
    assert np.array_equal(0x7F - (codes & 0x7F), expected)


@pytest.mark.parametrize("sign", [1, -1])
def test_alaw_encoder_follows_table_1_for_every_input(sign: int) -> None:
    x = ALL_INT16[ALL_INT16 >= 0] if sign > 0 else ALL_INT16[ALL_INT16 < 0]
    magnitude = (x.astype(np.int32) if sign > 0 else -x.astype(np.int32) - 1) >> 4
    expected = np.empty(len(x), dtype=np.int32)
    for index, (low, high, _) in enumerate(alaw_intervals()):
        expected[(magnitude >= low) & (magnitude <= high)] = index
    codes = g711.alaw_encode(x).astype(np.int32) ^ 0x55  # even bits inverted on the line
    sign_bit = 0x80 if sign > 0 else 0x00
    assert ((codes & 0x80) == sign_bit).all()
    assert np.array_equal(codes & 0x7F, expected)


def test_decode_tables_are_the_interval_midpoints() -> None:
    ulaw_mid = np.array([mid for _, _, mid in ulaw_intervals()]) * 4
    alaw_mid = np.array([mid for _, _, mid in alaw_intervals()]) * 8
    ulaw = g711.ulaw_decode(ALL_CODES).astype(np.int32)
    alaw = g711.alaw_decode(ALL_CODES).astype(np.int32)
    for code in range(128):
        assert ulaw[0xFF - code] == ulaw_mid[code]
        assert ulaw[0x7F - code] == -ulaw_mid[code]
        assert alaw[(0x80 | code) ^ 0x55] == alaw_mid[code]
        assert alaw[code ^ 0x55] == -alaw_mid[code]


@pytest.mark.parametrize(
    ("boundary", "below", "above"),
    [  # G.711 Table 2: first 14-bit magnitude of segments 1..7
        (31, 0, 1),
        (95, 1, 2),
        (223, 2, 3),
        (479, 3, 4),
        (991, 4, 5),
        (2015, 5, 6),
        (4063, 6, 7),
    ],
)
def test_ulaw_segment_boundaries(boundary: int, below: int, above: int) -> None:
    def segment(value: int) -> int:
        code = int(g711.ulaw_encode(np.array([value], dtype=np.int16))[0])
        return ((~code) >> 4) & 0x07

    assert segment(4 * boundary - 1) == below
    assert segment(4 * boundary) == above
    assert segment(-4 * boundary) == below  # one's complement: -4b is magnitude b - 1
    assert segment(-4 * boundary - 1) == above


@pytest.mark.parametrize(
    ("boundary", "below", "above"),
    [  # G.711 Table 1: first 12-bit magnitude of segments 1..7 (x 16 in 16 bits)
        (16, 0, 1),
        (32, 1, 2),
        (64, 2, 3),
        (128, 3, 4),
        (256, 4, 5),
        (512, 5, 6),
        (1024, 6, 7),
    ],
)
def test_alaw_segment_boundaries(boundary: int, below: int, above: int) -> None:
    def segment(value: int) -> int:
        code = int(g711.alaw_encode(np.array([value], dtype=np.int16))[0])
        return ((code ^ 0x55) >> 4) & 0x07

    assert segment(16 * boundary - 1) == below
    assert segment(16 * boundary) == above
    assert segment(-16 * boundary) == below
    assert segment(-16 * boundary - 1) == above


@pytest.mark.parametrize(("name", "encode", "decode"), LAWS, ids=law_ids)
def test_decode_table_round_trips(name: str, encode: Encoder, decode: Decoder) -> None:
    levels = decode(ALL_CODES)
    assert np.array_equal(decode(encode(levels)), levels)
    if name == "ulaw":  # only the two zeros share a level
        assert np.array_equal(encode(levels[ALL_CODES != 0x7F]), ALL_CODES[ALL_CODES != 0x7F])
    else:
        assert np.array_equal(encode(levels), ALL_CODES)


@pytest.mark.parametrize(("name", "encode", "decode"), LAWS, ids=law_ids)
def test_round_trip_error_is_half_a_step_per_segment(
    name: str, encode: Encoder, decode: Decoder
) -> None:
    """Every int16 decodes back within half its segment's step (16-bit units), except clipping."""
    y = decode(encode(ALL_INT16)).astype(np.int32)
    x = ALL_INT16.astype(np.int32)
    error = np.abs(y - x)
    magnitude = np.where(x >= 0, x, -x - 1)
    if name == "ulaw":
        segment = np.clip(np.floor(np.log2((magnitude >> 2) + 33)).astype(int) - 5, 0, 7)
        half_step = 2 ** (segment + 2)  # step 2**(s+1) in 14 bits, x 4 in 16 bits, / 2
        clipped = magnitude >> 2 > 8158
        assert error[clipped].max() == 32768 - 32124  # -32768 against the top level
    else:
        index = magnitude >> 4
        log2 = np.floor(np.log2(np.maximum(index, 1))).astype(int)
        segment = np.where(index < 16, 0, np.where(index < 32, 1, log2 - 3))
        # step 1 (segments 0, 1) or 2**(s-1) in 12 bits, x 16 in 16 bits, / 2
        half_step = np.where(segment < 2, 8, 2 ** (segment + 2))
        clipped = np.zeros_like(magnitude, dtype=bool)
    assert (error[~clipped] <= half_step[~clipped]).all()
    # The bound is tight: each segment has an input at exactly half a step.
    for s in range(8):
        in_segment = (segment == s) & ~clipped
        assert error[in_segment].max() == half_step[in_segment].max()


@pytest.mark.parametrize(("name", "encode", "decode"), LAWS, ids=law_ids)
def test_quantiser_is_monotonic_and_odd(name: str, encode: Encoder, decode: Decoder) -> None:
    y = decode(encode(ALL_INT16)).astype(np.int32)
    assert (np.diff(y) >= 0).all()
    # Symmetric in one's complement: x and -x - 1 decode to opposite levels.
    assert np.array_equal(y[ALL_INT16 >= 0][::-1], -y[ALL_INT16 < 0])


@pytest.mark.parametrize(
    ("encode", "decode", "codes"),
    [
        (g711.ulaw_encode, g711.ulaw_decode, ULAW_MILLIWATT),
        (g711.alaw_encode, g711.alaw_decode, ALAW_MILLIWATT),
    ],
    ids=law_ids,
)
def test_digital_milliwatt_decodes_to_a_1khz_sine(
    encode: Encoder, decode: Decoder, codes: list[int]
) -> None:
    pcm = decode(np.array(codes, dtype=np.uint8)).astype(np.float64)
    n = np.arange(8)
    basis = np.sin(2 * np.pi * n / 8 + np.pi / 8)
    amplitude = -(pcm @ basis) / (basis @ basis)  # the tables start on a negative half-cycle
    assert np.abs(pcm + amplitude * basis).max() < 0.02 * amplitude
    assert 22_500 < amplitude < 22_900  # 0 dBm0: 3.14-3.17 dB below the law's full scale
    assert encode(decode(np.array(codes, dtype=np.uint8))).tolist() == codes


def test_matches_audioop_where_it_still_exists() -> None:
    """Python <= 3.12's audioop (Sun's g711.c): A-law identical; mu-law decode identical,
    and mu-law encode identical for x >= 0 (for x < 0 audioop truncates the other way)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    raw = ALL_INT16.tobytes()
    assert g711.alaw_encode(ALL_INT16).tobytes() == audioop.lin2alaw(raw, 2)
    assert g711.alaw_decode(ALL_CODES).tobytes() == audioop.alaw2lin(ALL_CODES.tobytes(), 2)
    assert g711.ulaw_decode(ALL_CODES).tobytes() == audioop.ulaw2lin(ALL_CODES.tobytes(), 2)
    ours = g711.ulaw_encode(ALL_INT16)
    theirs = np.frombuffer(audioop.lin2ulaw(raw, 2), dtype=np.uint8)
    assert np.array_equal(ours[ALL_INT16 >= 0], theirs[ALL_INT16 >= 0])
    # For negatives audioop's magnitude is one 14-bit unit larger: never more than one code apart.
    levels = g711.ulaw_decode(ours).astype(np.int32)
    their_levels = g711.ulaw_decode(theirs).astype(np.int32)
    assert (their_levels <= levels).all()
    assert (np.abs(ours.astype(int) - theirs.astype(int))[ALL_INT16 < 0] <= 1).all()


def test_shape_and_dtype_are_kept() -> None:
    pcm = (np.arange(2 * 3 * 4, dtype=np.int16) * 997).reshape(2, 3, 4)
    for _, encode, decode in LAWS:
        codes = encode(pcm)
        assert codes.shape == pcm.shape
        assert codes.dtype == np.uint8
        back = decode(codes)
        assert back.shape == pcm.shape
        assert back.dtype == np.int16


def test_wider_integers_are_clipped_not_wrapped() -> None:
    wide = np.array([40000, -40000, 70000], dtype=np.int32)
    assert g711.ulaw_encode(wide).tolist() == [0x80, 0x00, 0x80]  # type: ignore[arg-type]
    assert g711.alaw_encode(wide).tolist() == [0xAA, 0x2A, 0xAA]  # type: ignore[arg-type]


int16_arrays = hnp.arrays(np.int16, st.integers(0, 400), elements=st.integers(-32768, 32767))


@given(int16_arrays)
def test_encoding_is_idempotent_after_one_round_trip(pcm: Pcm) -> None:
    for name, encode, decode in LAWS:
        codes = encode(pcm)
        levels = decode(codes)
        assert np.array_equal(decode(encode(levels)), levels)
        if name == "ulaw":  # the negative zero 0x7F decodes to 0, which encodes as 0xFF
            codes = np.where(codes == 0x7F, 0xFF, codes).astype(np.uint8)
        assert np.array_equal(encode(levels), codes)


@given(int16_arrays)
def test_round_trip_error_stays_within_three_percent_above_the_first_segments(pcm: Pcm) -> None:
    x = pcm.astype(np.int64)
    for _, encode, decode in LAWS:
        error = np.abs(decode(encode(pcm)).astype(np.int64) - x)
        loud = (np.abs(x) >= 1024) & (np.abs(x) <= 32000)
        assert (error[loud] <= np.abs(x[loud]) * 0.0315 + 16).all()
        assert (error[np.abs(x) < 1024] <= 32).all()


@given(st.integers(-32768, 32767), st.integers(-32768, 32767))
def test_order_is_preserved(a: int, b: int) -> None:
    pair = np.array(sorted([a, b]), dtype=np.int16)
    for _, encode, decode in LAWS:
        low, high = decode(encode(pair)).tolist()
        assert low <= high
