"""Prompt and recording files: the one media module that touches the disk.

Recordings are 16-bit PCM WAV written in blocks. After every block the WAV
header is rewritten (libsndfile's ``SFC_UPDATE_HEADER_NOW``) and the data
synced, so a process killed mid-call leaves a file whose header tells the
truth about everything written up to the last block. While a recording is
being written its file carries a ``.partial`` suffix; :meth:`RecordingWriter.close`
renames it to its final name.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile as sf

from media.errors import AudioFileError
from media.frame import Pcm

PARTIAL_SUFFIX = ".partial"
# libsndfile's sndfile.h: SFC_UPDATE_HEADER_NOW = 0x1060. soundfile exposes the
# command only through its private cffi handle; this module is the one place
# that reaches for it.
_SFC_UPDATE_HEADER_NOW = 0x1060


def read_mono(path: Path) -> tuple[Pcm, int]:
    """Read a WAV (or any libsndfile format) as mono int16 samples and its rate."""
    try:
        data, rate = sf.read(str(path), dtype="int16", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioFileError(f"cannot read audio file {path.name}: {exc}") from exc
    if data.shape[1] == 1:
        mono = data[:, 0].copy()
    else:
        mono = data.astype(np.int32).mean(axis=1).round().astype(np.int16)
    return mono, int(rate)


def read_stereo(path: Path) -> tuple[npt.NDArray[np.int16], int]:
    """Read a recording as an ``(n, channels)`` int16 array and its rate."""
    try:
        data, rate = sf.read(str(path), dtype="int16", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioFileError(f"cannot read audio file {path.name}: {exc}") from exc
    return data, int(rate)


def write_mono(path: Path, samples: Pcm, sample_rate: int) -> None:
    """Write a mono 16-bit WAV atomically (temporary name, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    sf.write(str(tmp), samples, sample_rate, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)


def sha256_file(path: Path) -> str:
    """SHA-256 hex digest of a file, read in blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


class RecordingWriter:
    """A stereo (or mono) 16-bit WAV written block by block, crash-safe.

    Not thread-safe: one thread (the recorder's I/O worker) owns each writer.
    """

    def __init__(self, path: Path, sample_rate: int, channels: int = 2) -> None:
        self.path = path
        self.partial_path = path.with_name(path.name + PARTIAL_SUFFIX)
        self.sample_rate = sample_rate
        self.channels = channels
        self.frames_written = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._file: Any = sf.SoundFile(
                str(self.partial_path),
                mode="w",
                samplerate=sample_rate,
                channels=channels,
                subtype="PCM_16",
                format="WAV",
            )
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            raise AudioFileError(f"cannot create recording {path.name}: {exc}") from exc
        self._update_header()

    def write(self, block: npt.NDArray[np.int16]) -> None:
        """Append a block of shape ``(n, channels)`` and make the header true."""
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise AudioFileError(f"block of shape {block.shape} for a {self.channels}-channel file")
        self._file.write(block)
        self.frames_written += int(block.shape[0])
        self._update_header()

    def _update_header(self) -> None:
        # The header and the data are in the kernel's page cache once written,
        # which is what survives a killed process; no fsync (that is for power
        # loss, and costs far more than the write).
        sf._snd.sf_command(self._file._file, _SFC_UPDATE_HEADER_NOW, sf._ffi.NULL, 0)

    def close(self) -> Path:
        """Finish the file and move it to its final name; returns that path."""
        self._file.close()
        os.replace(self.partial_path, self.path)
        return self.path

    def abort(self) -> None:
        """Close and delete the file (a recording that must not exist)."""
        try:
            self._file.close()
        finally:
            self.partial_path.unlink(missing_ok=True)


def repair_header(path: Path) -> int:
    """Make a 16-bit PCM WAV's sizes match the whole frames on disk; returns the frame count.

    A writer killed mid-block leaves a header that counts only the blocks
    before (we rewrite it after each block) and maybe a torn frame at the end.
    The RIFF and ``data`` sizes are set to the whole frames present, and a torn
    tail is cut, so any reader (stdlib ``wave``, libsndfile) opens the file.
    """
    import struct

    with path.open("r+b") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise AudioFileError(f"{path.name} is not a WAV file")
        block_align = 0
        pos = 12
        size = path.stat().st_size
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, chunk_len = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"fmt ":
                fmt = f.read(16)
                block_align = struct.unpack("<H", fmt[12:14])[0]
            if chunk_id == b"data":
                if block_align == 0:
                    raise AudioFileError(f"{path.name}: data before fmt")
                data_start = pos + 8
                frames = (size - data_start) // block_align
                data_len = frames * block_align
                f.seek(pos + 4)
                f.write(struct.pack("<I", data_len))
                f.seek(4)
                f.write(struct.pack("<I", data_start - 8 + data_len))
                f.truncate(data_start + data_len)
                return int(frames)
            pos += 8 + chunk_len + (chunk_len & 1)
    raise AudioFileError(f"{path.name} has no data chunk")
