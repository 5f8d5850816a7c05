"""Prompt and recording files: the one media module that touches the disk.

Recordings are 16-bit PCM WAV written in blocks. After every block the two
size fields of the WAV header (RIFF and ``data``) are rewritten in place, so a
process killed mid-call leaves a file whose header tells the truth about
everything written up to the last block. While a recording is being written
its file carries a ``.partial`` suffix; :meth:`RecordingWriter.close` renames
it to its final name.

The writer owns its 44-byte header (:func:`wav_header`) and writes with plain
``os.write``/``os.pwrite`` on a file descriptor: a block is one ``write`` of
the interleaved samples and one ``pwrite`` per size field, with no
libsndfile state in between. That is what makes a recorded call cost a few
microseconds of CPU per second (``bench/recording_bench.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf

from media.errors import AudioFileError
from media.frame import Pcm

PARTIAL_SUFFIX = ".partial"
WAV_HEADER_BYTES = 44
# Offset of the first size field (RIFF) in the canonical 44-byte header; the
# other (data) is its last four bytes.
_RIFF_SIZE_AT = 4
_MAX_DATA_BYTES = 0xFFFFFFFF - (WAV_HEADER_BYTES - 8)


def wav_header(sample_rate: int, channels: int, data_bytes: int) -> bytes:
    """The canonical 44-byte header of a 16-bit PCM WAV holding ``data_bytes`` of samples."""
    block_align = 2 * channels
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        WAV_HEADER_BYTES - 8 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        1,  # WAVE_FORMAT_PCM
        channels,
        sample_rate,
        sample_rate * block_align,
        block_align,
        16,
        b"data",
        data_bytes,
    )


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


def write_mono(path: Path, samples: Pcm, sample_rate: int, *, mode: int = 0o644) -> None:
    """Write a mono 16-bit PCM WAV atomically: a temporary file beside it, then a rename.

    Readers never see half a file, and two writers of one path cannot clash
    (each writes its own temporary file). The file gets ``mode`` (prompts are
    shared: readable by all); a failure leaves no temporary file behind and
    raises :class:`AudioFileError`.
    """
    data = np.ascontiguousarray(samples, dtype="<i2")
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(wav_header(sample_rate, 1, data.nbytes))
            f.write(data.data.cast("B"))
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise AudioFileError(f"cannot write audio file {path.name}: {exc}") from exc


def parse_wav_stream(data: bytes) -> tuple[Pcm, int]:
    """Mono 16-bit PCM samples and their rate from a WAV held in memory, as a pipe gives it.

    A program that streams a WAV to a pipe (espeak-ng's ``--stdout``) writes
    its header before it knows the length, so the RIFF and ``data`` sizes are
    placeholders (0x7ffff000): the data chunk is taken to run to the end of
    the bytes, whatever its header says. :class:`AudioFileError` for anything
    but 16-bit mono PCM.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioFileError("not a WAV stream")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + 8
        if chunk_id == b"fmt ":
            audio_format, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, body)
            fmt = (audio_format, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise AudioFileError("the WAV stream has no format before its data")
            audio_format, channels, rate, bits = fmt
            if (audio_format, channels, bits) != (1, 1, 16):
                raise AudioFileError(
                    f"the WAV stream is format {audio_format}, {channels} channel(s), "
                    f"{bits} bits; expected 16-bit mono PCM"
                )
            end = min(body + size, len(data))
            end -= (end - body) % 2
            return np.frombuffer(data[body:end], dtype="<i2").astype(np.int16), rate
        pos = body + size + (size & 1)
    raise AudioFileError("the WAV stream has no data")


def sha256_file(path: Path) -> str:
    """SHA-256 hex digest of a file, read in blocks."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class PartialFile:
    """What both recording writers share: a file written as ``NAME.partial``, then renamed.

    It is created ``0600`` with ``header`` as its first bytes; :meth:`check`
    refuses a block of the wrong shape, or any block once the file is closed
    or a write has failed (a recording with a hole in the middle would
    misplace everything after it on the call's time line). Not thread-safe:
    one thread (the recorder's I/O worker) owns each writer.
    """

    def __init__(self, path: Path, sample_rate: int, channels: int, header: bytes) -> None:
        self.path = path
        self.partial_path = path.with_name(path.name + PARTIAL_SUFFIX)
        self.sample_rate = sample_rate
        self.channels = channels
        self.frames_written = 0
        # Why writing stopped (a full disk...): once set, the file ends where it is.
        self.failed: str | None = None
        self._fd = -1
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
            self._fd = os.open(self.partial_path, flags, 0o600)
            self._write_all(header)
        except OSError as exc:
            self._close_fd()
            raise AudioFileError(f"cannot create recording {path.name}: {exc}") from exc

    def check(self, block: npt.NDArray[np.int16]) -> None:
        """Refuse a block this file cannot take (see the class docstring)."""
        if block.ndim != 2 or block.shape[1] != self.channels or block.dtype != np.int16:
            raise AudioFileError(
                f"block of shape {block.shape} and type {block.dtype} for a "
                f"{self.channels}-channel 16-bit file"
            )
        if self._fd < 0:
            raise AudioFileError(f"recording {self.path.name} is closed")
        if self.failed is not None:
            raise AudioFileError(f"recording {self.path.name} stopped: {self.failed}")

    def _write_all(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def _close_fd(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def close(self) -> Path:
        """Finish the file and move it to its final name; returns that path."""
        try:
            self._close_fd()
            os.replace(self.partial_path, self.path)
        except OSError as exc:
            raise AudioFileError(f"cannot finish recording {self.path.name}: {exc}") from exc
        return self.path

    def abort(self) -> None:
        """Close and delete the file (a recording that must not exist)."""
        try:
            self._close_fd()
        finally:
            self.partial_path.unlink(missing_ok=True)


class RecordingWriter(PartialFile):
    """A stereo (or mono) 16-bit WAV written block by block, crash-safe.

    A write that fails (``ENOSPC``, ``EIO``) leaves the file exactly as it was
    after the last whole block, header included, and the writer refuses any
    further block (:class:`PartialFile`).
    """

    def __init__(self, path: Path, sample_rate: int, channels: int = 2) -> None:
        super().__init__(path, sample_rate, channels, wav_header(sample_rate, channels, 0))

    def write(self, block: npt.NDArray[np.int16]) -> None:
        """Append a block of shape ``(n, channels)`` and make the header true."""
        self.check(block)
        data_bytes = (self.frames_written + block.shape[0]) * 2 * self.channels
        if data_bytes > _MAX_DATA_BYTES:
            raise AudioFileError(f"recording {self.path.name} would exceed the WAV size limit")
        try:
            # Samples first, then the sizes that count them: a crash between the
            # two leaves a header that is short, never one that overclaims.
            self._write_all(np.ascontiguousarray(block).data.cast("B"))
            # One pwrite from the RIFF size to the data size (the bytes between
            # never change) instead of one per field.
            header = wav_header(self.sample_rate, self.channels, data_bytes)
            os.pwrite(self._fd, header[_RIFF_SIZE_AT:], _RIFF_SIZE_AT)
        except OSError as exc:
            self._cut_torn_tail()
            self.failed = exc.strerror or str(exc)
            raise AudioFileError(f"cannot write recording {self.path.name}: {exc}") from exc
        # The header and the data are in the kernel's page cache once written,
        # which is what survives a killed process; no fsync (that is for power
        # loss, and costs far more than the write).
        self.frames_written += int(block.shape[0])

    def _cut_torn_tail(self) -> None:
        """After a failed write: cut the file back to the header and the whole blocks.

        A short write (``ENOSPC`` halfway through a block) leaves bytes off the
        frame grid; the header still counts only what was written before, so
        cutting there makes the file exactly what its header says. Shrinking a
        file needs no space, so this works on a full disk.
        """
        good = WAV_HEADER_BYTES + self.frames_written * 2 * self.channels
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, good)
            header = wav_header(self.sample_rate, self.channels, good - WAV_HEADER_BYTES)
            os.pwrite(self._fd, header[_RIFF_SIZE_AT:], _RIFF_SIZE_AT)


def repair_header(path: Path) -> int:
    """Make a 16-bit PCM WAV's sizes match the whole frames on disk; returns the frame count.

    A writer killed mid-block leaves a header that counts only the blocks
    before (we rewrite it after each block) and maybe a torn frame at the end.
    The RIFF and ``data`` sizes are set to the whole frames present, and a torn
    tail is cut, so any reader (stdlib ``wave``, libsndfile) opens the file.
    """
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
