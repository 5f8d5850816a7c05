"""The recorder: gaps of silence on the call's time line, and a disk that fills up."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ivr.call.recorder import BLOCK_FRAMES, RecorderPool, Recording
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
