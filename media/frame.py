"""Frames and codecs: the unit of audio exchanged every 20 ms.

Every call carries 20 ms frames (PROTOCOL.md). Internally a frame is a 1-D
numpy ``int16`` array of ``samples_per_frame(rate)`` samples; on the wire it is
encoded by the call's codec. ``pcm_s16le`` is little-endian signed 16-bit PCM;
``pcmu`` / ``pcma`` are G.711 mu-law / A-law (ITU-T G.711), 8000 Hz only.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from media import g711
from media.errors import BadFrame, UnsupportedCodec

PTIME_MS = 20
FRAMES_PER_SECOND = 1000 // PTIME_MS
SAMPLE_RATES = (8000, 16000)

Pcm = npt.NDArray[np.int16]

_S16LE = np.dtype("<i2")
_INT16 = np.dtype(np.int16)
_NATIVE_LE = sys.byteorder == "little"  # pcm_s16le is then int16 as it lies in memory


def samples_per_frame(sample_rate: int) -> int:
    """Samples in one 20 ms frame at ``sample_rate``."""
    return sample_rate * PTIME_MS // 1000


def silence(sample_rate: int) -> Pcm:
    """One frame of digital silence."""
    return np.zeros(samples_per_frame(sample_rate), dtype=np.int16)


@dataclass(frozen=True, slots=True)
class Codec:
    """A codec at a rate: how a 20 ms frame looks on the wire."""

    name: str
    sample_rate: int

    samples_per_frame: int = field(init=False, repr=False, compare=False)
    frame_bytes: int = field(init=False, repr=False, compare=False)
    """Bytes of one 20 ms frame on the wire (asked of every frame: computed once)."""

    def __post_init__(self) -> None:
        per_sample = 2 if self.name == "pcm_s16le" else 1
        object.__setattr__(self, "samples_per_frame", samples_per_frame(self.sample_rate))
        object.__setattr__(self, "frame_bytes", self.samples_per_frame * per_sample)

    def decode(self, payload: bytes) -> Pcm:
        """Wire bytes of one frame to PCM; :class:`BadFrame` on a wrong size."""
        if len(payload) != self.frame_bytes:
            raise BadFrame(
                f"{self.name} at {self.sample_rate} Hz takes {self.frame_bytes} bytes "
                f"per 20 ms frame, got {len(payload)}"
            )
        if self.name == "pcm_s16le":
            pcm: Pcm = np.frombuffer(payload, _S16LE)
            return pcm if _NATIVE_LE else pcm.astype(np.int16)
        codes = np.frombuffer(payload, dtype=np.uint8)
        return g711.ulaw_decode(codes) if self.name == "pcmu" else g711.alaw_decode(codes)

    def encode(self, pcm: Pcm) -> bytes:
        """One frame of PCM to wire bytes."""
        if self.name == "pcm_s16le":
            if _NATIVE_LE and pcm.dtype is _INT16:
                return pcm.tobytes()
            return bytes(pcm.astype("<i2", copy=False).tobytes())
        codes = g711.ulaw_encode(pcm) if self.name == "pcmu" else g711.alaw_encode(pcm)
        return bytes(codes.tobytes())


_SUPPORTED: dict[str, tuple[int, ...]] = {
    "pcm_s16le": (8000, 16000),
    "pcmu": (8000,),
    "pcma": (8000,),
}


def supported_codecs() -> dict[str, tuple[int, ...]]:
    """Codec name to the rates it may be used at (PROTOCOL.md, "Codecs")."""
    return dict(_SUPPORTED)


def codec(name: str, sample_rate: int) -> Codec:
    """The :class:`Codec` for ``name`` at ``sample_rate``; :class:`UnsupportedCodec` if none."""
    rates = _SUPPORTED.get(name)
    if rates is None:
        raise UnsupportedCodec(f"unknown codec {name!r}; use one of {sorted(_SUPPORTED)}")
    if sample_rate not in rates:
        raise UnsupportedCodec(
            f"codec {name!r} runs at {' or '.join(map(str, rates))} Hz, not {sample_rate}"
        )
    return Codec(name, sample_rate)
