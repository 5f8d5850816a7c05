"""WAV files: the recording writer's header and blocks, prompts written whole, streams parsed."""

from __future__ import annotations

import io
import stat
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from media.errors import AudioFileError
from media.wavfile import (
    RecordingWriter,
    parse_wav_stream,
    read_mono,
    sha256_file,
    wav_header,
    write_mono,
)


@pytest.mark.parametrize(("rate", "channels"), [(8000, 1), (8000, 2), (16000, 2), (48000, 1)])
def test_header_is_byte_for_byte_what_the_stdlib_writes(rate: int, channels: int) -> None:
    frames = np.arange(37 * channels, dtype=np.int16).reshape(-1, channels)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames.tobytes())
    assert buf.getvalue()[:44] == wav_header(rate, channels, frames.nbytes)


def test_blocks_read_back_exactly_with_both_readers(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    blocks = [rng.integers(-32768, 32767, (n, 2), dtype=np.int16) for n in (8000, 160, 7)]
    writer = RecordingWriter(tmp_path / "r.wav", 8000)
    for block in blocks:
        writer.write(block)
    path = writer.close()
    whole = np.concatenate(blocks)
    data, rate = sf.read(str(path), dtype="int16")
    assert rate == 8000
    assert np.array_equal(data, whole)
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (2, 8000, len(whole))
        assert w.readframes(len(whole)) == whole.tobytes()
    assert path.stat().st_size == 44 + whole.nbytes
    assert len(sha256_file(path)) == 64


def test_a_recording_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path / "r.wav", 8000)
    path = writer.close()
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def test_a_non_contiguous_block_is_written_in_order(tmp_path: Path) -> None:
    both = np.arange(200, dtype=np.int16).reshape(-1, 4)
    view = both[:, ::2]  # every other column: not contiguous
    writer = RecordingWriter(tmp_path / "r.wav", 8000)
    writer.write(view)
    data, _ = sf.read(str(writer.close()), dtype="int16")
    assert np.array_equal(data, view)


@pytest.mark.parametrize(
    "block",
    [
        np.zeros((10, 1), dtype=np.int16),  # wrong channel count
        np.zeros(10, dtype=np.int16),  # not 2-D
        np.zeros((10, 2), dtype=np.float32),  # wrong sample type
    ],
)
def test_a_wrong_block_is_refused_by_name(tmp_path: Path, block: np.ndarray) -> None:
    writer = RecordingWriter(tmp_path / "r.wav", 8000)
    with pytest.raises(AudioFileError, match="block of shape"):
        writer.write(block)
    writer.write(np.ones((5, 2), dtype=np.int16))  # the file is still usable
    assert sf.info(str(writer.close())).frames == 5


def test_writing_after_close_is_refused(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path / "r.wav", 8000)
    writer.close()
    with pytest.raises(AudioFileError, match="closed"):
        writer.write(np.ones((5, 2), dtype=np.int16))


def test_abort_leaves_nothing(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path / "r.wav", 8000)
    writer.write(np.ones((5, 2), dtype=np.int16))
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(AudioFileError, match=r"cannot create recording r\.wav"):
        RecordingWriter(blocker / "r.wav", 8000)


def test_a_streamed_wav_runs_to_the_end_of_its_bytes() -> None:
    """espeak-ng's --stdout header carries placeholder sizes; the data runs to EOF."""
    pcm = np.array([0, 1, -1, 32767, -32768], dtype=np.int16)
    header = (
        b"RIFF\x24\xf0\xff\x7fWAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00"
        b"\x22\x56\x00\x00\x44\xac\x00\x00\x02\x00\x10\x00data\x00\xf0\xff\x7f"
    )
    samples, rate = parse_wav_stream(header + pcm.astype("<i2").tobytes())
    assert rate == 22050
    assert samples.tolist() == pcm.tolist()
    # A torn last sample is dropped, not misread.
    samples, _ = parse_wav_stream(header + pcm.astype("<i2").tobytes() + b"\x01")
    assert samples.tolist() == pcm.tolist()


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"not a wav at all", "not a WAV"),
        (b"RIFF\x00\x00\x00\x00WAVE", "no data"),
        (b"RIFF\x00\x00\x00\x00WAVEdata\x02\x00\x00\x00\x00\x00", "no format"),
        (
            b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x02\x00"
            b"\x40\x1f\x00\x00\x00\x7d\x00\x00\x04\x00\x10\x00data\x04\x00\x00\x00\x00\x00\x00\x00",
            "2 channel",
        ),
    ],
)
def test_a_stream_that_is_not_mono_16_bit_pcm_is_refused(data: bytes, why: str) -> None:
    with pytest.raises(AudioFileError, match=why):
        parse_wav_stream(data)


def test_write_mono_is_atomic_and_readable_by_all(tmp_path: Path) -> None:
    pcm = (np.arange(800) * 37 % 20000 - 10000).astype(np.int16)
    path = tmp_path / "prompts" / "p.wav"
    write_mono(path, pcm, 16000)
    assert [p.name for p in path.parent.iterdir()] == ["p.wav"]  # no temporary left
    assert path.stat().st_mode & 0o777 == 0o644
    with wave.open(str(path), "rb") as f:
        assert (f.getnchannels(), f.getsampwidth(), f.getframerate()) == (1, 2, 16000)
        assert np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").tolist() == pcm.tolist()
    samples, rate = read_mono(path)
    assert rate == 16000
    assert samples.tolist() == pcm.tolist()


def test_write_mono_that_fails_leaves_no_temporary(tmp_path: Path) -> None:
    """The rename fails (a folder is in the way): the temporary file goes too."""
    (tmp_path / "p.wav").mkdir()
    with pytest.raises(AudioFileError, match=r"cannot write audio file p\.wav"):
        write_mono(tmp_path / "p.wav", np.zeros(10, dtype=np.int16), 8000)
    assert [p.name for p in tmp_path.iterdir()] == ["p.wav"]
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(AudioFileError, match="cannot write"):
        write_mono(blocker / "p.wav", np.zeros(10, dtype=np.int16), 8000)
