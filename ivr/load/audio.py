"""What virtual callers send: wire codecs, per-call talk signals, in-band DTMF.

Everything here is computed once per process or once per call, so that a
caller's frame for a tick is a table look-up and a byte concatenation: the
runner must stay far cheaper per call than the server it measures.

*Talk* frames are unique per call and per frame, so that a recording can be
matched frame by frame against what was sent: frame ``k`` of a call starts
with a ``SIGNATURE_SAMPLES``-sample signature that spells ``k`` in binary
(+-8000 per bit, which every codec keeps apart, G.711 included) and goes on
with a block of white noise drawn from the call's seed (``NOISE_BLOCK``
frames, cycled). A frame never decodes to digital silence, which is what the
server records for a caller frame that was missing or late.

A talk *file* (a WAV) is the same for every call: still checkable frame by
frame, just not unique across calls.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from media.dtmf import generate as dtmf_tone
from media.errors import UnsupportedCodec
from media.frame import Codec, Pcm, codec, samples_per_frame, supported_codecs

# docs/protocol.md, "Codecs": the codecs a call may use, and the rates of each.
CODEC_RATES: dict[str, tuple[int, ...]] = supported_codecs()

SIGNATURE_SAMPLES = 20  # 2**20 frames: 5.8 hours of talk per call
SIGNATURE_LEVEL = 8000
NOISE_BLOCK = 50  # one second of noise, cycled under the signature
NOISE_PEAK = 12000


# The runner encodes exactly as the server decodes: one codec table for both.
WireCodec = Codec


def heard(codec: Codec, pcm: Pcm) -> Pcm:
    """What the far end decodes from ``pcm`` sent with ``codec`` (G.711 is lossy)."""
    return codec.decode(codec.encode(pcm))


def wire_codec(name: str, sample_rate: int) -> Codec:
    """The codec ``name`` at ``sample_rate``; ValueError if docs/protocol.md has no such pair."""
    try:
        return codec(name, sample_rate)
    except UnsupportedCodec as exc:
        raise ValueError(f"no codec {name!r} at {sample_rate} Hz: {exc}") from None


def _signature(k: int, n: int) -> Pcm:
    bits = (k >> np.arange(n)) & 1
    sig: Pcm = np.where(bits == 1, SIGNATURE_LEVEL, -SIGNATURE_LEVEL).astype(np.int16)
    return sig


def noise_block(seed: int, sample_rate: int) -> npt.NDArray[np.int16]:
    """``NOISE_BLOCK`` frames of white noise, ``(frames, samples)``, drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    n = samples_per_frame(sample_rate)
    block: npt.NDArray[np.int16] = rng.integers(
        -NOISE_PEAK, NOISE_PEAK, (NOISE_BLOCK, n), dtype=np.int16
    )
    block[block == 0] = 1
    return block


def talk_pcm(seed: int, sample_rate: int, k: int) -> Pcm:
    """Frame ``k`` of the talk signal of the call whose seed is ``seed`` (as PCM)."""
    frame: Pcm = noise_block(seed, sample_rate)[k % NOISE_BLOCK].copy()
    frame[:SIGNATURE_SAMPLES] = _signature(k, SIGNATURE_SAMPLES)
    return frame


class TalkSignal:
    """A call's talk frames on the wire: ``frame(k)`` is one cheap call per frame."""

    __slots__ = ("codec", "frame")

    def __init__(self, codec: WireCodec, frame: Callable[[int], bytes]) -> None:
        self.codec = codec
        self.frame = frame


class SignatureTables:
    """Per-process tables: the wire bytes of every signature, in two halves."""

    HALF = SIGNATURE_SAMPLES // 2

    def __init__(self, codec: WireCodec) -> None:
        self.codec = codec
        half = self.HALF
        # Frame k starts with table[k's low bits] + table[k's high bits].
        self.table = [codec.encode(_signature(k, half)) for k in range(1 << half)]
        self.prefix_bytes = SIGNATURE_SAMPLES * codec.frame_bytes // codec.samples_per_frame

    def noise_talk(self, seed: int) -> TalkSignal:
        """The unique talk signal of one call."""
        codec = self.codec
        block = noise_block(seed, codec.sample_rate)
        rows = [codec.encode(row)[self.prefix_bytes :] for row in block]
        table, mask, half = self.table, (1 << self.HALF) - 1, self.HALF
        first = 1 << half
        # The first 2**HALF frames (20 s) have a high half of 0: their tails, the high
        # half and the noise row, are joined once here, so a frame is one concatenation.
        tails = [table[0] + row for row in rows]

        def frame(k: int) -> bytes:
            if k < first:
                return table[k] + tails[k % NOISE_BLOCK]
            return table[k & mask] + table[(k >> half) & mask] + rows[k % NOISE_BLOCK]

        return TalkSignal(codec, frame)


def file_talk(codec: WireCodec, pcm: Pcm) -> TalkSignal:
    """A talk signal read from a file: ``pcm`` at the call's rate, cycled."""
    n = codec.samples_per_frame
    count = max(1, len(pcm) // n)
    x = np.zeros(count * n, dtype=np.int16)
    x[: min(len(pcm), len(x))] = pcm[: len(x)]
    rows = [codec.encode(x[i * n : (i + 1) * n]) for i in range(count)]

    def frame(k: int) -> bytes:
        return rows[k % count]

    return TalkSignal(codec, frame)


def expected_talk(
    codec: WireCodec, frames_sent: int, seed: int | None, file_pcm: Pcm | None
) -> list[Pcm]:
    """What the server must hear of a call's talk frames 0..frames_sent-1 (decoded)."""
    if file_pcm is not None:
        signal = file_talk(codec, file_pcm)
    else:
        assert seed is not None
        signal = signature_tables(codec).noise_talk(seed)
    return [codec.decode(signal.frame(k)) for k in range(frames_sent)]


_TABLES: dict[tuple[str, int], SignatureTables] = {}


def signature_tables(codec: WireCodec) -> SignatureTables:
    """The signature tables of ``codec``, built once per process (verification checks many)."""
    key = (codec.name, codec.sample_rate)
    tables = _TABLES.get(key)
    if tables is None:
        tables = _TABLES[key] = SignatureTables(codec)
    return tables


def dtmf_frames(
    codec: WireCodec, digit: str, duration_ms: int, level_dbm0: float, gap_ms: int = 60
) -> list[bytes]:
    """The wire frames of one in-band DTMF digit (ITU-T Q.23) and the gap after it."""
    n = codec.samples_per_frame
    tone = dtmf_tone(digit, duration_ms, codec.sample_rate, level_dbm0)
    gap = np.zeros(round(gap_ms * codec.sample_rate / 1000), dtype=np.int16)
    x = np.concatenate([tone, gap])
    x = np.concatenate([x, np.zeros((-len(x)) % n, dtype=np.int16)])
    return [codec.encode(x[i : i + n]) for i in range(0, len(x), n)]


def read_talk_file(path: Path, sample_rate: int) -> Pcm:
    """A WAV file as mono PCM at ``sample_rate`` (resampled if need be)."""
    from media.resample import resample
    from media.wavfile import read_mono

    pcm, rate = read_mono(path)
    return pcm if rate == sample_rate else resample(pcm, rate, sample_rate)
