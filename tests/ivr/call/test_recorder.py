"""The recorder: block writes, masking through its delay line, gaps, and a disk that fills up."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ivr.call.recorder import BLOCK_FRAMES, MASK_DELAY_FRAMES, RecorderPool, Recording
from media.dtmf import DETECTION_DELAY_FRAMES
from media.frame import Pcm
from media.wavfile import WAV_HEADER_BYTES
from tests.conftest import noise_frames
from tests.disk import fill, free, small_tmpfs


@pytest.fixture
def pool() -> Iterator[RecorderPool]:
    p = RecorderPool()
    yield p
    p.shutdown()


async def test_a_gap_is_silence_in_place_and_listed(tmp_path: Path, pool: RecorderPool) -> None:
    frames = noise_frames(130)
    rec = Recording(pool, "r1", tmp_path / "r1.wav", 8000)
    for f in frames[:60]:
        rec.add(f, None)
    rec.add_gap(20, "clock_stall")
    rec.add_gap(5, "clock_stall")  # adjacent: the same gap
    for f in frames[60:]:
        rec.add(f, None)
    rec.add_gap(3, "clock_stall")
    done = await rec.close()
    assert done.error is None
    assert rec.gaps == [
        {"start_s": 1.2, "end_s": 1.7, "reason": "clock_stall"},
        {"start_s": 3.1, "end_s": 3.16, "reason": "clock_stall"},
    ]
    audio, _rate = sf.read(str(done.path), dtype="int16", always_2d=True)
    assert done.frames == len(audio) == (130 + 28) * 160
    left = audio[:, 0].reshape(-1, 160)
    assert all(np.array_equal(left[i], frames[i]) for i in range(60))
    assert not left[60:85].any()
    assert all(np.array_equal(left[85 + i], frames[60 + i]) for i in range(70))
    assert not left[155:].any()


N = 160  # samples per 20 ms frame at 8 kHz


async def record(
    tmp_path: Path, pool: RecorderPool, frames: list[Pcm], masks: dict[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Record ``frames`` on the caller's channel, ``masks[i]`` given with frame ``i``.

    The agent's channel carries the same frames, never masked. Returns both
    channels of the file, one row per frame.
    """
    rec = Recording(pool, "rm", tmp_path / "rm.wav", 8000)
    for i, f in enumerate(frames):
        rec.add(f, f, masks.get(i))
    done = await rec.close()
    assert done.error is None
    audio, _ = sf.read(str(done.path), dtype="int16", always_2d=True)
    assert len(audio) == len(frames) * N
    return audio[:, 0].reshape(-1, N), audio[:, 1].reshape(-1, N)


def test_the_delay_line_is_the_detectors() -> None:
    assert MASK_DELAY_FRAMES == DETECTION_DELAY_FRAMES >= 1


async def test_a_tone_is_masked_from_its_first_sample_in_the_delay_line(
    tmp_path: Path, pool: RecorderPool
) -> None:
    """The tone began 37 samples before the end of frame 3 and is reported with frame 5."""
    frames = noise_frames(10)
    originals = [f.copy() for f in frames]
    onset = 3 * N + (N - 37)
    left, right = await record(tmp_path, pool, frames, {5: onset - 5 * N, 6: 0})
    for i in range(3):
        assert np.array_equal(left[i], frames[i])
    assert np.array_equal(left[3][: N - 37], frames[3][: N - 37])
    assert not left[3][N - 37 :].any()
    assert not left[4:7].any()  # held, reported, still sounding
    for i in range(7, 10):
        assert np.array_equal(left[i], frames[i])
    # The agent's channel and the frames themselves (the agent heard them) are untouched.
    assert all(np.array_equal(right[i], originals[i]) for i in range(10))
    assert all(np.array_equal(f, o) for f, o in zip(frames, originals, strict=True))


async def test_masking_reaches_back_exactly_the_delay_line(
    tmp_path: Path, pool: RecorderPool
) -> None:
    """An onset further back than the frames held reaches the held frames, no more."""
    frames = noise_frames(8)
    report = 5
    left, _ = await record(tmp_path, pool, frames, {report: -(MASK_DELAY_FRAMES * N) - 5})
    first_held = report - MASK_DELAY_FRAMES
    for i in range(first_held):
        assert np.array_equal(left[i], frames[i])  # written already: beyond reach
    assert not left[first_held : report + 1].any()
    for i in range(report + 1, 8):
        assert np.array_equal(left[i], frames[i])


async def test_a_tone_across_a_block_boundary_is_masked_in_both_blocks(
    tmp_path: Path, pool: RecorderPool
) -> None:
    """The tone begins in the last frame of the first one-second block."""
    frames = noise_frames(BLOCK_FRAMES + 10)
    last = BLOCK_FRAMES - 1  # the first block's last frame
    report = last + MASK_DELAY_FRAMES
    onset = last * N + 100
    masks = {report: onset - report * N, report + 1: 0, report + 2: 0}
    left, right = await record(tmp_path, pool, frames, masks)
    for i in range(last):
        assert np.array_equal(left[i], frames[i])
    assert np.array_equal(left[last][:100], frames[last][:100])
    assert not left[last][100:].any()
    assert not left[last + 1 : report + 3].any()
    for i in range(report + 3, len(frames)):
        assert np.array_equal(left[i], frames[i])
    assert all(np.array_equal(right[i], frames[i]) for i in range(len(frames)))


async def test_a_tone_reported_while_paused_still_masks_the_frames_before(
    tmp_path: Path, pool: RecorderPool
) -> None:
    frames = noise_frames(6)
    rec = Recording(pool, "rp", tmp_path / "rp.wav", 8000)
    for f in frames[:3]:
        rec.add(f, None)
    rec.pause("flow")
    rec.add(frames[3], None, -N - 10)  # began 10 samples before the end of frame 1
    rec.resume()
    for f in frames[4:]:
        rec.add(f, None)
    done = await rec.close()
    audio, _ = sf.read(str(done.path), dtype="int16", always_2d=True)
    left = audio[:, 0].reshape(-1, N)
    assert np.array_equal(left[0], frames[0])
    assert np.array_equal(left[1][: N - 10], frames[1][: N - 10])
    assert not left[1][N - 10 :].any()
    assert not left[2:4].any()
    assert np.array_equal(left[4], frames[4])
    assert np.array_equal(left[5], frames[5])


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "disk", 4) as d:
        yield d


async def test_a_full_disk_ends_the_file_at_its_last_whole_block(
    disk: Path, pool: RecorderPool
) -> None:
    frames = noise_frames(50 * 4)
    rec = Recording(pool, "r2", disk / "r2.wav", 8000)
    for f in frames[: BLOCK_FRAMES * 2 + 10]:  # two blocks reach the disk
        rec.add(f, f)
    await asyncio.sleep(0.2)
    fill(disk)
    added = BLOCK_FRAMES * 2 + 10
    while rec.failed is None and added < len(frames):
        rec.add(frames[added], frames[added])
        added += 1
        if added % BLOCK_FRAMES == 0:
            await asyncio.sleep(0.1)  # let the I/O thread try the block
    assert rec.failed is not None
    assert "No space left" in rec.failed
    done = await rec.close()
    free(disk)
    assert done.error is not None
    assert done.frames == BLOCK_FRAMES * 2 * 160
    size = done.path.stat().st_size
    assert size == WAV_HEADER_BYTES + done.frames * 4  # on the frame grid, header true
    audio, _ = sf.read(str(done.path), dtype="int16", always_2d=True)
    assert len(audio) == done.frames
    left = audio[:, 0].reshape(-1, 160)
    assert all(np.array_equal(left[i], frames[i]) for i in range(BLOCK_FRAMES * 2))


async def test_a_file_that_cannot_be_created_is_a_failed_recording(
    disk: Path, pool: RecorderPool
) -> None:
    fill(disk)
    rec = Recording(pool, "r3", disk / "day" / "r3.wav", 8000)
    for f in noise_frames(5):
        rec.add(f, None)
    done = await rec.close()
    free(disk)
    assert rec.failed is not None
    assert done.error is not None
    assert done.frames == 0
