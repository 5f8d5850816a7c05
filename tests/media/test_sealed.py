"""Sealed recordings: the plain WAV comes back exactly, no sample lies in clear, tampering fails."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.errors import AudioFileError
from media.sealed import (
    HEADER_BYTES,
    TAG_BYTES,
    SealedAudio,
    SealedWriter,
    open_audio,
    read_audio,
    repair_sealed,
    sealed_key_id,
)
from media.wavfile import RecordingWriter
from tests.disk import fill, free, small_tmpfs

RATE = 8000
SECOND = RATE * 2 * 2  # bytes of one second of stereo 16-bit audio: one chunk


def blocks(seed: int, sizes: list[int]) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(-32768, 32767, (n, 2), dtype=np.int16) for n in sizes]


def write_both(tmp_path: Path, parts: list[np.ndarray], key: bytes) -> tuple[Path, Path]:
    clear = RecordingWriter(tmp_path / "clear.wav", RATE)
    sealed = SealedWriter(tmp_path / "sealed.wav", RATE, 2, key=key, key_id="r_test")
    for b in parts:
        clear.write(b)
        sealed.write(b)
    return clear.close(), sealed.close()


def test_the_plain_wav_is_byte_for_byte_what_the_clear_writer_writes(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    parts = blocks(1, [RATE, RATE, RATE, 1234])  # three whole chunks and a short last one
    clear, sealed = write_both(tmp_path, parts, key)
    want = clear.read_bytes()
    with SealedAudio(sealed, key) as audio:
        assert audio.size == len(want)
        assert audio.read_at(0, audio.size) == want
        assert audio.sha256() == hashlib.sha256(want).hexdigest()
        assert audio.frames == 3 * RATE + 1234
        samples, rate = read_audio(audio)
    assert rate == RATE
    assert np.array_equal(samples, np.concatenate(parts))
    # The file is the header, then each chunk with its tag: nothing else.
    assert sealed.stat().st_size == HEADER_BYTES + 4 * TAG_BYTES + len(want) - 44
    assert sealed_key_id(sealed) == "r_test"
    assert sealed_key_id(clear) is None
    assert sealed.stat().st_mode & 0o777 == 0o600


def test_no_sample_appears_in_clear_in_the_sealed_file(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    parts = blocks(2, [RATE] * 3)
    clear, sealed = write_both(tmp_path, parts, key)
    raw = sealed.read_bytes()
    data = clear.read_bytes()[44:]
    # Any 16-byte run of the audio (8 samples), and the WAV markers, are absent.
    for at in range(0, len(data) - 16, 997):
        assert data[at : at + 16] not in raw
    assert b"RIFF" not in raw
    assert b"data" not in raw[HEADER_BYTES:]


@settings(max_examples=60, deadline=None)
@given(offset=st.integers(0, 3 * SECOND + 600), length=st.integers(1, 2 * SECOND))
def test_any_range_reads_exactly_the_bytes_of_the_plain_wav(
    sealed_pair: tuple[Path, Path, bytes], offset: int, length: int
) -> None:
    clear, sealed, key = sealed_pair
    want = clear.read_bytes()
    with SealedAudio(sealed, key) as audio:
        assert audio.read_at(offset, length) == want[offset : offset + length]


@pytest.fixture(scope="module")
def sealed_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, bytes]:
    key = secrets.token_bytes(32)
    clear, sealed = write_both(tmp_path_factory.mktemp("pair"), blocks(3, [RATE] * 3 + [77]), key)
    return clear, sealed, key


def test_a_wrong_key_or_a_changed_byte_is_refused(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    _, sealed = write_both(tmp_path, blocks(4, [RATE, RATE]), key)
    with SealedAudio(sealed, secrets.token_bytes(32)) as audio, pytest.raises(AudioFileError):
        audio.read_at(44, 10)
    raw = bytearray(sealed.read_bytes())
    raw[HEADER_BYTES + SECOND + TAG_BYTES + 5] ^= 1  # one bit of the second chunk
    sealed.write_bytes(bytes(raw))
    with SealedAudio(sealed, key) as audio:
        assert len(audio.read_at(44, 100)) == 100  # the first chunk is whole
        with pytest.raises(AudioFileError, match="chunk 1 does not decrypt"):
            audio.read_at(44 + SECOND, 100)


def test_chunks_swapped_or_moved_to_another_file_do_not_decrypt(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    _, sealed = write_both(tmp_path, blocks(5, [RATE, RATE]), key)
    raw = sealed.read_bytes()
    stride = SECOND + TAG_BYTES
    head, c0, c1 = raw[:HEADER_BYTES], raw[HEADER_BYTES:][:stride], raw[HEADER_BYTES + stride :]
    sealed.write_bytes(head + c1 + c0)
    with SealedAudio(sealed, key) as audio, pytest.raises(AudioFileError):
        audio.read_at(44, 10)
    # The same key under another key id (another file's header): refused too.
    other = tmp_path / "other.wav"
    SealedWriter(other, RATE, 2, key=key, key_id="r_other").close()
    other.write_bytes(other.read_bytes()[:HEADER_BYTES] + c0 + c1)
    with SealedAudio(other, key) as audio, pytest.raises(AudioFileError):
        audio.read_at(44, 10)


def test_a_file_torn_mid_chunk_is_cut_back_to_its_last_whole_chunk(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    parts = blocks(6, [RATE, RATE, RATE])
    w = SealedWriter(tmp_path / "r.wav", RATE, 2, key=key, key_id="r_torn")
    for b in parts:
        w.write(b)
    partial = w.partial_path  # killed here: never closed
    size = partial.stat().st_size
    os.truncate(partial, size - 1000)  # the last chunk's write was torn
    assert repair_sealed(partial, key) == 2 * RATE
    assert partial.stat().st_size == HEADER_BYTES + 2 * (SECOND + TAG_BYTES)
    with SealedAudio(partial, key) as audio:
        samples, _ = read_audio(audio)
    assert np.array_equal(samples, np.concatenate(parts[:2]))
    assert repair_sealed(partial, key) == 2 * RATE  # repaired once is repaired
    # A few bytes of a chunk (less than a tag) are cut as well.
    with partial.open("ab") as f:
        f.write(b"\0" * 9)
    assert repair_sealed(partial, key) == 2 * RATE
    assert partial.stat().st_size == HEADER_BYTES + 2 * (SECOND + TAG_BYTES)


def test_repair_with_a_wrong_key_cuts_nothing(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    _, sealed = write_both(tmp_path, blocks(7, [RATE, RATE]), key)
    size = sealed.stat().st_size
    with pytest.raises(AudioFileError):
        repair_sealed(sealed, secrets.token_bytes(32))
    assert sealed.stat().st_size == size


def test_a_full_disk_keeps_the_file_at_its_last_whole_chunk(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    with small_tmpfs(tmp_path / "disk", 1) as disk:
        w = SealedWriter(disk / "r.wav", RATE, 2, key=key, key_id="r_full")
        first, second = blocks(8, [RATE, RATE])
        w.write(first)
        fill(disk)
        with pytest.raises(AudioFileError, match="No space left"):
            w.write(second)
        assert w.failed is not None
        with pytest.raises(AudioFileError, match="stopped"):
            w.write(second)
        assert w.frames_written == RATE
        free(disk)
        final = w.close()
        assert final.stat().st_size == HEADER_BYTES + SECOND + TAG_BYTES  # no torn tail
        with SealedAudio(final, key) as audio:
            samples, _ = read_audio(audio)
        assert np.array_equal(samples, first)


def test_clear_wavs_from_before_sealing_are_read_through_the_same_door(tmp_path: Path) -> None:
    parts = blocks(9, [RATE, 99])
    clear, _ = write_both(tmp_path, parts, secrets.token_bytes(32))

    def no_key(key_id: str) -> bytes:
        raise AssertionError("a clear file needs no key")

    with open_audio(clear, no_key) as audio:
        assert audio.read_at(0, audio.size) == clear.read_bytes()
        samples, rate = read_audio(audio)
    assert rate == RATE
    assert np.array_equal(samples, np.concatenate(parts))
