"""The recorder: stereo WAV files (caller left, agent right), off the event loop.

The media clock hands each recorded call one frame per channel per tick
(:meth:`Recording.add`), sample-aligned to the clock, with the in-band DTMF
decision for it: where the caller's audio must be silenced because a tone
sounds (ITU-T Q.24 detection, :mod:`media.dtmf`). A tone is reported some
40 ms after it began, so the recorder's input is a delay line: the newest
:data:`MASK_DELAY_FRAMES` frames (the detector's
:data:`media.dtmf.DETECTION_DELAY_FRAMES`) are held back, unwritten, and a
tone reported now is silenced from its first sample, in them too.

With a keyring, the file is sealed (:mod:`media.sealed`: AES-256-GCM, a
data key of its own made when the file is opened, on the I/O thread); its
checksum and size are those of the plain WAV a reader gets.

Frames are gathered in one-second blocks; a full block goes to a single I/O
thread shared by all recordings, which writes it and makes the WAV header
true (:class:`media.wavfile.RecordingWriter`). So memory per recording is
bounded by two blocks, a crash loses at most the last second (and the frames
held back), and the event loop never touches the disk. The one thread keeps
every file's writes in order.

A recording stays on its call's time line whatever happens: ticks the media
clock had to skip (a stalled process) are written as silence and listed as
``gaps`` (:meth:`Recording.add_gap`), as pauses are. A write that fails (a
full disk, an I/O error) ends the file cleanly at the last whole block: the
writer cuts any torn tail, later blocks are not written, and
:attr:`Recording.failed` tells the call at its next tick, which ends the
recording as ``truncated`` and says where (:attr:`FinishedRecording.error`,
``frames``).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from media.dtmf import DETECTION_DELAY_FRAMES
from media.errors import AudioFileError
from media.frame import FRAMES_PER_SECOND, PTIME_MS, Pcm, samples_per_frame
from media.sealed import SealedAudio, SealedWriter
from media.wavfile import RecordingWriter, sha256_file

log = logging.getLogger("ivr.recorder")


class DataKeys(Protocol):
    """Where a sealed recording's data key comes from (:class:`ivr.store.keyring.Keyring`)."""

    def new_key(self, key_id: str) -> bytes:
        """A new random data key for ``key_id``, kept (wrapped) by the keyring."""
        ...


T = TypeVar("T")

BLOCK_FRAMES = FRAMES_PER_SECOND  # one second per block
# The delay line: frames held back before they are written, so that a DTMF tone
# reported late can still be masked from its first sample.
MASK_DELAY_FRAMES = DETECTION_DELAY_FRAMES


@dataclass(frozen=True, slots=True)
class FinishedRecording:
    """What a closed recording holds: whole frames on disk, and why it ended early, if it did."""

    path: Path
    frames: int
    sample_rate: int
    sha256: str | None
    size_bytes: int
    error: str | None = None  # set when a write failed: the file ends at ``frames``

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


class _Sink:
    """One recording's file as the I/O thread sees it.

    ``error`` is written by the I/O thread and read by the event loop's thread
    (a single attribute store, atomic under the GIL): once set, nothing more
    is written to the file.
    """

    __slots__ = ("error", "key", "writer")

    def __init__(self) -> None:
        self.writer: RecordingWriter | SealedWriter | None = None
        self.error: str | None = None
        self.key: bytes | None = None  # the data key of a sealed file (kept for its checksum)


class RecorderPool:
    """The one I/O thread that writes every recording of this process.

    Jobs run strictly in the order they were submitted (open, writes, close
    of a file never overtake each other). A job is a plain callable on a
    :class:`queue.SimpleQueue`; a block write has no future of its own (a
    recorded call submits one a second, and the hand-over must cost next to
    nothing next to the write itself): its failure is kept on the
    recording's sink, where the call finds it.
    """

    def __init__(self, *, inline: bool = False) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._inline = inline
        """Jobs run at once on the caller's thread: the simulator's, whose clock is virtual."""
        if not inline:
            self._thread.start()
        self._stopped = False

    def _put(self, job: Callable[[], object] | None) -> None:
        if not self._inline:
            self._jobs.put(job)
        elif job is not None:
            try:
                job()
            except Exception:
                log.exception("a recorder job failed")

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job()
            except Exception:
                log.exception("a recorder job failed")

    def _call(self, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn`` on the I/O thread, in order; its result or error in a future."""
        future: Future[T] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

        self._put(run)
        return future

    def _failed(self, sink: _Sink, path: Path, exc: Exception) -> None:
        sink.error = str(exc)
        log.error("recording %s stopped: %s", path.name, exc)

    def submit_open(
        self, path: Path, sample_rate: int, keys: DataKeys | None = None, key_id: str = ""
    ) -> _Sink:
        """Open a recording's file; sealed with a new data key ``key_id`` from ``keys``."""
        if self._stopped:
            raise RuntimeError("the recorder has shut down")
        sink = _Sink()

        def open_file() -> None:
            try:
                if keys is None:
                    sink.writer = RecordingWriter(path, sample_rate, 2)
                else:
                    sink.key = keys.new_key(key_id)
                    sink.writer = SealedWriter(path, sample_rate, 2, key=sink.key, key_id=key_id)
            except (AudioFileError, OSError) as exc:
                self._failed(sink, path, AudioFileError(f"cannot create recording: {exc}"))

        self._put(open_file)
        return sink

    def submit_write(
        self, sink: _Sink, callers: list[Pcm | None], agents: list[Pcm | None], n: int
    ) -> None:
        def write() -> None:
            if sink.error is None and sink.writer is not None:
                try:
                    sink.writer.write(_interleave(callers, agents, n))
                except AudioFileError as exc:
                    self._failed(sink, sink.writer.path, exc)

        self._put(write)

    def submit_close(
        self, sink: _Sink, callers: list[Pcm | None], agents: list[Pcm | None], n: int, path: Path
    ) -> Future[FinishedRecording]:
        def close() -> FinishedRecording:
            w = sink.writer
            if w is None:  # the file could not even be created
                return FinishedRecording(path, 0, 0, None, 0, sink.error or "not opened")
            if callers and sink.error is None:
                try:
                    w.write(_interleave(callers, agents, n))
                except AudioFileError as exc:
                    self._failed(sink, path, exc)
            try:
                final = w.close()
            except AudioFileError as exc:
                # Renaming failed: the audio is whole up to frames_written, under
                # its .partial name, which start-up repair registers.
                self._failed(sink, path, exc)
                return FinishedRecording(path, w.frames_written, w.sample_rate, None, 0, sink.error)
            if sink.key is None:
                digest, size = sha256_file(final), final.stat().st_size
            else:  # the checksum and size of the plain WAV, as readers get it
                with SealedAudio(final, sink.key) as audio:
                    digest, size = audio.sha256(), audio.size
                sink.key = None
            return FinishedRecording(
                final, w.frames_written, w.sample_rate, digest, size, sink.error
            )

        return self._call(close)

    def shutdown(self) -> None:
        """Finish every job submitted so far, then stop the thread."""
        if not self._stopped:
            self._stopped = True
            self._put(None)
        if not self._inline:
            self._thread.join()


def _interleave(
    callers: list[Pcm | None], agents: list[Pcm | None], n: int
) -> npt.NDArray[np.int16]:
    """Frame references of both channels to one ``(frames * n, 2)`` block (None: silence)."""
    silence = np.zeros(n, dtype=np.int16)
    block = np.empty((len(callers) * n, 2), dtype=np.int16)
    np.concatenate([f if f is not None else silence for f in callers], out=block[:, 0])
    np.concatenate([f if f is not None else silence for f in agents], out=block[:, 1])
    return block


def _silenced(frame: Pcm | None, cut: int) -> Pcm | None:
    """``frame`` with every sample from ``cut`` on set to 0 (None: all silence)."""
    if frame is None or cut <= 0:
        return None
    if cut >= len(frame):
        return frame
    masked = frame.copy()
    masked[cut:] = 0
    return masked


class Recording:
    """One call's recording while it runs."""

    def __init__(
        self,
        pool: RecorderPool,
        recording_id: str,
        path: Path,
        sample_rate: int,
        keys: DataKeys | None = None,
    ) -> None:
        self.id = recording_id
        self.path = path
        self.sample_rate = sample_rate
        self.paused = False
        self._pool = pool
        self._n = samples_per_frame(sample_rate)
        # Frame references of the block being gathered (None for silence), the
        # newest MASK_DELAY_FRAMES of them the delay line, still open to masking;
        # the I/O thread turns a full block into one interleaved array. The
        # tick only appends (and, while a tone sounds, replaces a few).
        self._callers: list[Pcm | None] = []
        self._agents: list[Pcm | None] = []
        self._sink = pool.submit_open(path, sample_rate, keys, recording_id)
        self._closed = False
        self._frames = 0
        self.pauses: list[dict[str, object]] = []
        self.gaps: list[dict[str, object]] = []

    @property
    def failed(self) -> str | None:
        """Why the file stopped being written (a full disk...), or None while all is well."""
        return self._sink.error

    def add(self, caller: Pcm | None, agent: Pcm | None, mask_from: int | None = None) -> None:
        """Append one 20 ms frame per channel (None, or paused, is silence).

        ``mask_from`` is the in-band DTMF decision for this frame: silence the
        caller from that sample of it on (0: the whole frame, a tone still
        sounding). A negative ``mask_from`` is a tone that began in an earlier
        frame; it is silenced from there in the delay line as well. Frames
        beyond the delay line are written already and stay as they are.
        """
        if mask_from is not None:
            caller = self._mask(mask_from, caller)
        callers = self._callers
        if self.paused:
            callers.append(None)
            self._agents.append(None)
        else:
            callers.append(caller)
            self._agents.append(agent)
        self._frames += 1
        if len(callers) == BLOCK_FRAMES + MASK_DELAY_FRAMES:
            self._flush()

    def _mask(self, start: int, frame: Pcm | None) -> Pcm | None:
        """``frame`` silenced from sample ``start`` on, and the held frames from ``start`` too.

        Frames are references to what the legs decoded (the agent hears the
        same arrays), so a partly silenced frame is a copy.
        """
        n = self._n
        callers = self._callers
        held = min(len(callers), MASK_DELAY_FRAMES)
        for back in range(held, 0, -1):  # the oldest held frame first
            begins = -back * n  # its first sample, from the new frame's start
            if begins + n > start:
                callers[-back] = _silenced(callers[-back], start - begins)
        return _silenced(frame, start)

    def _flush(self) -> None:
        callers = self._callers
        self._pool.submit_write(
            self._sink, callers[:BLOCK_FRAMES], self._agents[:BLOCK_FRAMES], self._n
        )
        self._callers = callers[BLOCK_FRAMES:]
        self._agents = self._agents[BLOCK_FRAMES:]

    def add_gap(self, frames: int, reason: str) -> None:
        """``frames`` ticks that never ran (the clock skipped them): silence, listed in ``gaps``.

        Adjacent gaps of one reason are listed as one.
        """
        if frames <= 0:
            return
        start = self.elapsed_s
        for _ in range(frames):
            self._callers.append(None)
            self._agents.append(None)
            self._frames += 1
            if len(self._callers) == BLOCK_FRAMES + MASK_DELAY_FRAMES:
                self._flush()
        end = round(self.elapsed_s, 3)
        last = self.gaps[-1] if self.gaps else None
        if last is not None and last["reason"] == reason and last["end_s"] == round(start, 3):
            last["end_s"] = end
        else:
            self.gaps.append({"start_s": round(start, 3), "end_s": end, "reason": reason})

    @property
    def elapsed_s(self) -> float:
        """Seconds of audio so far (the recording's own time line)."""
        return self._frames * PTIME_MS / 1000

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
        if self.paused:
            self.pauses[-1]["end_s"] = round(self.elapsed_s, 3)
        return await asyncio.wrap_future(
            self._pool.submit_close(self._sink, self._callers, self._agents, self._n, self.path)
        )
