"""The recorder: stereo WAV files (caller left, agent right), off the event loop.

The media clock hands each recorded call one frame per channel per tick
(:meth:`Recording.add`), sample-aligned to the clock. Frames are gathered in
one-second blocks; a full block goes to a single I/O thread shared by all
recordings, which writes it and makes the WAV header true
(:class:`media.wavfile.RecordingWriter`). So memory per recording is bounded
by two blocks, a crash loses at most the last second, and the event loop
never touches the disk. The one thread keeps every file's writes in order.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from media.frame import FRAMES_PER_SECOND, Pcm, samples_per_frame
from media.wavfile import RecordingWriter

log = logging.getLogger("ivr.recorder")

BLOCK_FRAMES = FRAMES_PER_SECOND  # one second per block
# Frames held back before they are written, so that a DTMF tone can be masked
# from its first sample once it is detected (at most ~45 ms after its onset,
# plus the 20 ms frame it was found in).
MASK_DELAY_FRAMES = 5


@dataclass(frozen=True, slots=True)
class FinishedRecording:
    path: Path
    frames: int
    sample_rate: int
    sha256: str
    size_bytes: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


class RecorderPool:
    """The one I/O thread that writes every recording of this process."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recorder")
        self.active = 0

    def submit_open(self, path: Path, sample_rate: int) -> Future[RecordingWriter]:
        return self._executor.submit(RecordingWriter, path, sample_rate, 2)

    def submit_write(
        self,
        writer: Future[RecordingWriter],
        callers: list[Pcm | None],
        agents: list[Pcm | None],
        n: int,
    ) -> None:
        def write() -> None:
            writer.result().write(_interleave(callers, agents, n))

        self._executor.submit(write).add_done_callback(_log_failure)

    def submit_close(
        self,
        writer: Future[RecordingWriter],
        callers: list[Pcm | None],
        agents: list[Pcm | None],
        n: int,
    ) -> Future[FinishedRecording]:
        def close() -> FinishedRecording:
            w = writer.result()
            if callers:
                w.write(_interleave(callers, agents, n))
            path = w.close()
            h = hashlib.sha256()
            with path.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 16), b""):
                    h.update(chunk)
            return FinishedRecording(
                path, w.frames_written, w.sample_rate, h.hexdigest(), path.stat().st_size
            )

        return self._executor.submit(close)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)


def _interleave(
    callers: list[Pcm | None], agents: list[Pcm | None], n: int
) -> npt.NDArray[np.int16]:
    """Frame references of both channels to one ``(frames * n, 2)`` block (None: silence)."""
    silence = np.zeros(n, dtype=np.int16)
    block = np.empty((len(callers) * n, 2), dtype=np.int16)
    block[:, 0] = np.concatenate([f if f is not None else silence for f in callers])
    block[:, 1] = np.concatenate([f if f is not None else silence for f in agents])
    return block


def _log_failure(future: Future[None]) -> None:
    exc = future.exception()
    if exc is not None:
        log.error("recording write failed: %s", exc)


class Recording:
    """One call's recording while it runs."""

    def __init__(self, pool: RecorderPool, recording_id: str, path: Path, sample_rate: int) -> None:
        self.id = recording_id
        self.path = path
        self.sample_rate = sample_rate
        self.paused = False
        self._pool = pool
        self._n = samples_per_frame(sample_rate)
        # A block is two lists of frame references (None for silence); the I/O
        # thread turns them into one interleaved array. The tick only appends.
        self._callers: list[Pcm | None] = []
        self._agents: list[Pcm | None] = []
        self._writer = pool.submit_open(path, sample_rate)
        self._closed = False
        self._frames = 0
        self.pauses: list[dict[str, object]] = []
        self._delay: deque[list[Pcm | None]] = deque()
        self.masked_samples = 0
        pool.active += 1

    def add(self, caller: Pcm | None, agent: Pcm | None) -> None:
        """Append one 20 ms frame per channel (None, or paused, is silence).

        Frames pass through a short delay line (:data:`MASK_DELAY_FRAMES`) so
        that :meth:`mask_from` can still silence a tone's beginning.
        """
        if self.paused:
            caller = agent = None
        self._delay.append([caller, agent])
        self._frames += 1
        if len(self._delay) > MASK_DELAY_FRAMES:
            self._write(*self._delay.popleft())

    def mask_from(self, onset: int) -> None:
        """Silence the caller from ``onset`` samples after the newest frame's start on.

        ``onset`` is negative when the tone began in an earlier frame; frames
        already written (beyond the delay line) cannot be reached.
        """
        start_of = -(len(self._delay) - 1) * self._n  # the oldest held frame's start
        for frame in self._delay:
            end = start_of + self._n
            if frame[0] is not None and end > onset:
                cut = max(onset - start_of, 0)
                masked = frame[0].copy()
                masked[cut:] = 0
                self.masked_samples += self._n - cut
                frame[0] = masked
            start_of = end

    def mask_last(self) -> None:
        """Silence the caller in the newest frame (a tone still sounding)."""
        if self._delay and self._delay[-1][0] is not None:
            self._delay[-1][0] = None
            self.masked_samples += self._n

    def _write(self, caller: Pcm | None, agent: Pcm | None) -> None:
        self._callers.append(caller)
        self._agents.append(agent)
        if len(self._callers) == BLOCK_FRAMES:
            self._pool.submit_write(self._writer, self._callers, self._agents, self._n)
            self._callers, self._agents = [], []

    @property
    def elapsed_s(self) -> float:
        """Seconds of audio so far (the recording's own time line)."""
        return self._frames * self._n / self.sample_rate

    def pause(self, reason: str) -> bool:
        """From the next frame on, write silence; False if already paused."""
        if self.paused:
            return False
        self.paused = True
        self.pauses.append({"start_s": round(self.elapsed_s, 3), "end_s": None, "reason": reason})
        return True

    def resume(self) -> bool:
        if not self.paused:
            return False
        self.paused = False
        self.pauses[-1]["end_s"] = round(self.elapsed_s, 3)
        return True

    async def close(self) -> FinishedRecording:
        """Write what is left, finish the file and return what was written."""
        assert not self._closed
        self._closed = True
        self._pool.active -= 1
        if self.paused:
            self.pauses[-1]["end_s"] = round(self.elapsed_s, 3)
        while self._delay:
            self._write(*self._delay.popleft())
        return await asyncio.wrap_future(
            self._pool.submit_close(self._writer, self._callers, self._agents, self._n)
        )
