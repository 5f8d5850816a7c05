"""Sealed recordings: a WAV's audio encrypted at rest in AES-256-GCM chunks.

A sealed file holds no WAV header and no sample in clear. It is a 64-byte
header in clear (what the file is, its audio format, the size of a chunk
and the id of its data key), then the audio data (16-bit little-endian
PCM, interleaved, as a WAV's ``data`` chunk holds it) in chunks of
``chunk_bytes`` plaintext, each encrypted on its own:

    ciphertext(chunk k) || tag(16 bytes),   nonce = 0^32 || k (64-bit, big-endian),
                                           aad   = the file header || k

Every chunk but the last has the same length, so byte ``p`` of the audio is
in chunk ``p // chunk_bytes`` at a known offset: a Range request decrypts
only the chunks it covers. The key is the file's own (one per recording),
so the chunk number is a nonce that is never used twice; the header and the
number in the associated data stop chunks being swapped, moved to another
file or their format changed. A chunk is written once and never rewritten
(a WAV header's sizes are not kept in the file: the reader makes them from
the file's length), which is what keeps it crash-safe without ever reusing
a nonce: a writer killed mid-chunk leaves a torn last chunk that fails its
tag, and :func:`repair_sealed` cuts it off, as :func:`media.wavfile.repair_header`
cuts a torn frame.

What a reader sees (:class:`SealedAudio`) is the plain WAV, byte for byte
what :class:`media.wavfile.RecordingWriter` would have written: the
canonical 44-byte header, then the samples. So its SHA-256 is the one the
recording row and the consent evidence keep, and exports stay checkable.
Cutting whole chunks off the end is not visible to the tags alone; the
recording row's size is (``Store.recording_audio`` compares them).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from media.errors import AudioFileError
from media.wavfile import WAV_HEADER_BYTES, PartialFile, wav_header

MAGIC = b"IVRSEAL1"
VERSION = 1
HEADER_BYTES = 64
TAG_BYTES = 16
KEY_BYTES = 32
_KEY_ID_BYTES = HEADER_BYTES - 24
_HEAD = struct.Struct("<8sHHII4x")
_MAX_CHUNKS = 1 << 40


def sealed_header(sample_rate: int, channels: int, chunk_bytes: int, key_id: str) -> bytes:
    kid = key_id.encode("ascii")
    if not 0 < len(kid) <= _KEY_ID_BYTES:
        raise AudioFileError(f"a key id of {len(kid)} bytes (1 to {_KEY_ID_BYTES})")
    head = _HEAD.pack(MAGIC, VERSION, channels, sample_rate, chunk_bytes)
    return head + kid.ljust(_KEY_ID_BYTES, b"\0")


def _nonce(k: int) -> bytes:
    return b"\0\0\0\0" + k.to_bytes(8, "big")


def _aad(header: bytes, k: int) -> bytes:
    return header + k.to_bytes(8, "big")


def sealed_key_id(path: Path) -> str | None:
    """The id of the data key a sealed file needs; None for a clear WAV (or anything else)."""
    try:
        with path.open("rb") as f:
            head = f.read(HEADER_BYTES)
    except OSError as exc:
        raise AudioFileError(f"cannot read recording {path.name}: {exc}") from exc
    if len(head) < HEADER_BYTES or head[:8] != MAGIC:
        return None
    return _parse_header(head, path.name)[3]


def _parse_header(head: bytes, name: str) -> tuple[int, int, int, str]:
    magic, version, channels, rate, chunk = _HEAD.unpack_from(head)
    if magic != MAGIC or version != VERSION:
        raise AudioFileError(f"{name} is not a sealed recording of version {VERSION}")
    if channels not in (1, 2) or not 0 < rate <= 192_000 or chunk <= 0 or chunk % (2 * channels):
        raise AudioFileError(f"{name}: a sealed header with an impossible format")
    key_id = head[24:HEADER_BYTES].rstrip(b"\0").decode("ascii", "replace")
    return channels, rate, chunk, key_id


class SealedWriter(PartialFile):
    """A recording written sealed, block by block: :class:`media.wavfile.RecordingWriter`'s twin.

    Same contract (:class:`media.wavfile.PartialFile`): a ``.partial`` file
    while it is written, renamed by :meth:`close`; one thread owns it; a
    failed write leaves the file at its last whole chunk and refuses every
    later block. A block whose size is not a whole number of chunks keeps
    its tail in memory until the next block or :meth:`close` (the recorder's
    blocks are one chunk each).
    """

    def __init__(
        self,
        path: Path,
        sample_rate: int,
        channels: int,
        *,
        key: bytes,
        key_id: str,
        chunk_bytes: int | None = None,
    ) -> None:
        if len(key) != KEY_BYTES:
            raise AudioFileError("a data key is 32 bytes (AES-256)")
        self.chunk_bytes = chunk_bytes or sample_rate * 2 * channels  # one second
        self._header = sealed_header(sample_rate, channels, self.chunk_bytes, key_id)
        self._aes = AESGCM(key)
        self._chunks = 0
        self._pending = bytearray()
        super().__init__(path, sample_rate, channels, self._header)

    def write(self, block: npt.NDArray[np.int16]) -> None:
        """Append a block of shape ``(n, channels)``: its whole chunks go to disk at once."""
        self.check(block)
        data = np.ascontiguousarray(block, dtype="<i2").data.cast("B")
        c = self.chunk_bytes
        if not self._pending and len(data) == c:  # the recorder's case: one chunk, no copy
            self._seal([data])
        else:
            self._pending += data
            whole = len(self._pending) // c * c
            if whole:
                view = memoryview(self._pending)
                self._seal([view[i : i + c] for i in range(0, whole, c)])
                view.release()
                del self._pending[:whole]

    def _seal(self, chunks: list[memoryview]) -> None:
        k = self._chunks
        if k + len(chunks) > _MAX_CHUNKS:
            raise AudioFileError(f"recording {self.path.name} is too long")
        enc, head = self._aes.encrypt, self._header
        out = [
            enc(b"\0\0\0\0" + (k + i).to_bytes(8, "big"), c, head + (k + i).to_bytes(8, "big"))
            for i, c in enumerate(chunks)
        ]
        try:
            self._write_all(out[0] if len(out) == 1 else b"".join(out))
        except OSError as exc:
            self._cut_torn_tail()
            self.failed = exc.strerror or str(exc)
            raise AudioFileError(f"cannot write recording {self.path.name}: {exc}") from exc
        self._chunks = k + len(chunks)
        self.frames_written += sum(map(len, chunks)) // (2 * self.channels)

    def _cut_torn_tail(self) -> None:
        good = HEADER_BYTES + self._chunks * (self.chunk_bytes + TAG_BYTES)
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, good)

    def close(self) -> Path:
        """Seal what is pending as the last (short) chunk, and move the file to its final name."""
        if self._pending and self.failed is None and self._fd >= 0:
            tail = bytes(self._pending)
            self._pending.clear()
            self._seal([memoryview(tail)])
        return super().close()


class SealedAudio:
    """A sealed file read as the plain WAV it holds (:class:`Audio`)."""

    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        try:
            self._f = path.open("rb")
        except OSError as exc:
            raise AudioFileError(f"cannot read recording {path.name}: {exc}") from exc
        try:
            self._header = self._f.read(HEADER_BYTES)
            if len(self._header) < HEADER_BYTES:
                raise AudioFileError(f"{path.name} is shorter than a sealed header")
            self.channels, self.sample_rate, self.chunk_bytes, self.key_id = _parse_header(
                self._header, path.name
            )
            if len(key) != KEY_BYTES:
                raise AudioFileError("a data key is 32 bytes (AES-256)")
            self._aes = AESGCM(key)
            body = os.fstat(self._f.fileno()).st_size - HEADER_BYTES
            stride = self.chunk_bytes + TAG_BYTES
            self.chunks, tail = divmod(body, stride)
            self._last = self.chunk_bytes
            if tail > TAG_BYTES:  # a short last chunk (a torn one fails its tag when read)
                self.chunks += 1
                self._last = tail - TAG_BYTES
            self.data_bytes = (
                0 if self.chunks == 0 else (self.chunks - 1) * self.chunk_bytes + self._last
            )
            self._wav = wav_header(self.sample_rate, self.channels, self.data_bytes)
            self._cached: tuple[int, bytes] | None = None
        except BaseException:
            self._f.close()
            raise

    def __enter__(self) -> SealedAudio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._f.close()

    @property
    def size(self) -> int:
        return WAV_HEADER_BYTES + self.data_bytes

    @property
    def frames(self) -> int:
        return self.data_bytes // (2 * self.channels)

    def chunk(self, k: int) -> bytes:
        """The plaintext of chunk ``k``; :class:`AudioFileError` if it is not authentic."""
        if self._cached is not None and self._cached[0] == k:
            return self._cached[1]
        stride = self.chunk_bytes + TAG_BYTES
        n = (self._last if k == self.chunks - 1 else self.chunk_bytes) + TAG_BYTES
        sealed = os.pread(self._f.fileno(), n, HEADER_BYTES + k * stride)
        try:
            plain = self._aes.decrypt(_nonce(k), sealed, _aad(self._header, k))
        except InvalidTag:
            raise AudioFileError(
                f"{self.path.name}: chunk {k} does not decrypt (a wrong key, or a damaged file)"
            ) from None
        self._cached = (k, plain)
        return plain

    def read_at(self, offset: int, n: int) -> bytes:
        end = min(offset + n, self.size)
        out = bytearray()
        pos = offset
        if pos < WAV_HEADER_BYTES:
            out += self._wav[pos : min(end, WAV_HEADER_BYTES)]
            pos = WAV_HEADER_BYTES
        while pos < end:
            data_at = pos - WAV_HEADER_BYTES
            k, within = divmod(data_at, self.chunk_bytes)
            plain = self.chunk(k)
            take = plain[within : within + (end - pos)]
            out += take
            pos += len(take)
        return bytes(out)

    def samples(self) -> npt.NDArray[np.int16]:
        """Every sample, ``(frames, channels)``."""
        data = b"".join(self.chunk(k) for k in range(self.chunks))
        return np.frombuffer(data, dtype="<i2").astype(np.int16).reshape(-1, self.channels)

    def sha256(self) -> str:
        """SHA-256 of the plain WAV: the checksum the recording row keeps.

        Reads the file in large pieces (16 chunks a read) and decrypts each
        chunk in place of the slice it is in: the close of every recording runs it.
        """
        h = hashlib.sha256(self._wav)
        stride = self.chunk_bytes + TAG_BYTES
        dec, head, fd = self._aes.decrypt, self._header, self._f.fileno()
        body = HEADER_BYTES + (self.chunks - 1) * stride + self._last + TAG_BYTES - HEADER_BYTES
        for first in range(0, self.chunks, 16):
            at = first * stride
            piece = memoryview(os.pread(fd, min(16 * stride, body - at), HEADER_BYTES + at))
            for i in range(0, len(piece), stride):
                k = first + i // stride
                try:
                    h.update(dec(_nonce(k), piece[i : i + stride], _aad(head, k)))
                except InvalidTag:
                    why = "a wrong key, or a damaged file"
                    raise AudioFileError(
                        f"{self.path.name}: chunk {k} does not decrypt ({why})"
                    ) from None
        return h.hexdigest()


class ClearAudio:
    """A recording written before sealing (a plain WAV file), behind the same reader."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._f = path.open("rb")
        except OSError as exc:
            raise AudioFileError(f"cannot read recording {path.name}: {exc}") from exc
        self.size = os.fstat(self._f.fileno()).st_size

    def __enter__(self) -> ClearAudio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read_at(self, offset: int, n: int) -> bytes:
        return os.pread(self._f.fileno(), max(0, min(n, self.size - offset)), offset)

    def close(self) -> None:
        self._f.close()


Audio = SealedAudio | ClearAudio
"""A recording as its readers see it: the plain WAV, read at any offset (``size``, ``read_at``)."""


def open_audio(path: Path, key_for: Callable[[str], bytes]) -> SealedAudio | ClearAudio:
    """The recording at ``path`` as its plain WAV: sealed (its key from ``key_for``) or clear."""
    key_id = sealed_key_id(path)
    if key_id is None:
        return ClearAudio(path)
    return SealedAudio(path, key_for(key_id))


def read_audio(audio: Audio) -> tuple[npt.NDArray[np.int16], int]:
    """All samples ``(frames, channels)`` and the rate of an opened recording."""
    if isinstance(audio, SealedAudio):
        return audio.samples(), audio.sample_rate
    head = audio.read_at(0, WAV_HEADER_BYTES)
    if len(head) < WAV_HEADER_BYTES or head[:4] != b"RIFF":
        raise AudioFileError(f"{audio.path.name} is not a WAV file")
    channels, rate = struct.unpack_from("<HI", head, 22)
    data = audio.read_at(WAV_HEADER_BYTES, audio.size)
    data = data[: len(data) // (2 * channels) * 2 * channels]
    return np.frombuffer(data, dtype="<i2").astype(np.int16).reshape(-1, channels), int(rate)


def repair_sealed(path: Path, key: bytes) -> int:
    """Cut a sealed file back to its last authentic chunk; returns the frames it holds.

    A writer killed mid-chunk leaves a last chunk that is short or fails its
    tag: it is cut off (at most one second, as for a clear WAV). Chunks are
    never rewritten, so no nonce is used twice.
    """
    with SealedAudio(path, key) as audio:
        keep = audio.chunks
        stride = audio.chunk_bytes + TAG_BYTES
        try:
            if keep == 0:
                raise AudioFileError("no chunk")
            audio.chunk(keep - 1)
            end = HEADER_BYTES + (keep - 1) * stride + audio._last + TAG_BYTES
            frames = audio.frames
        except AudioFileError:
            keep = max(keep - 1, 0)
            if keep > 0:
                audio.chunk(keep - 1)  # the one before must hold: else a wrong key, not a crash
            end = HEADER_BYTES + keep * stride
            frames = keep * audio.chunk_bytes // (2 * audio.channels)
        if os.fstat(audio._f.fileno()).st_size == end:
            return frames
    with path.open("r+b") as f:
        f.truncate(end)  # a torn chunk, or a few bytes of one
    return frames
