"""Transcription's worker: the durable queue, worked off in a bounded process pool.

A trigger in the store queues a recording with ``transcribe = 1`` the moment
it is finished (complete, truncated, or interrupted and repaired), in the
same statement (``transcription_jobs``). :class:`TranscriptionWorker` works
the queue off in a bounded :class:`~concurrent.futures.ProcessPoolExecutor`
(at most one process per spare core, each scheduled only when a core would
otherwise idle), so decoding (:func:`ivr.speech.transcribe.transcribe_file`)
never runs on the event loop and yields the CPU to live calls. It looks at
the queue when woken (:meth:`TranscriptionWorker.wake`: the server wakes it
when a call's recording is finished) and every ``poll_s`` besides. A restart
resumes what was pending or running; a failed job is retried up to
:data:`MAX_ATTEMPTS` times, then marked failed; a job whose recording was
deleted is dropped. Worker processes die with the server, even a ``kill -9``
of it.

The worker reaches the store only through :class:`TranscriptionQueue`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Protocol

from ivr import eventloop
from ivr.config import NumberConfig
from ivr.errors import NotFound
from ivr.speech.redaction import redact
from ivr.speech.transcribe import Transcript, model_for, transcribe_file

log = logging.getLogger("ivr.transcribe")

MAX_ATTEMPTS = 3
POLL_S = 1.0
IDLE_POOL_S = 60.0  # an idle pool's processes are ended after this long


class TranscriptionQueue(Protocol):
    """The part of the store the worker uses (:class:`ivr.store.Store` has it)."""

    async def requeue_transcriptions(self) -> int:
        """At start-up: jobs a stop or crash left running go back to the queue."""

    async def enqueue_transcriptions(self) -> int:
        """Queue every finished recording to transcribe that has no job yet."""

    async def claim_transcription(self) -> dict[str, Any] | None:
        """The oldest pending job, now running, with its recording's fields; None if none."""

    async def finish_transcription(
        self, recording_id: str, state: str, error: str | None = None, *, refund: bool = False
    ) -> None:
        """A job is ``pending`` again, or final (``done``, ``failed``, ``dropped``)."""

    async def save_transcript(
        self,
        recording_id: str,
        transcript: Mapping[str, Any],
        segments: Iterable[Mapping[str, Any]],
    ) -> bool:
        """Store a transcript and mark its job done; False if the recording is gone."""

    def recording_path(self, relative: str) -> Path:
        """A recording's file, inside the recordings folder (:class:`NotFound` if not)."""

    def file_key(self, path: Path) -> bytes | None:
        """The data key a sealed recording file needs (None: a clear WAV)."""


PR_SET_PDEATHSIG = 1  # prctl(2), from <linux/prctl.h>
PARENT_POLL_S = 0.5  # how often the fallback watcher looks at the parent


def _child_init(parent: int) -> None:
    """Make a worker process yield the CPU to everything else and die with the server.

    ``SCHED_IDLE`` (Linux, sched(7)) runs the process only when a core would
    otherwise idle, so a decode waits for the media clock and the calls rather
    than the other way round; elsewhere the lowest ``nice`` priority is the
    nearest thing. Ctrl-C is the server's. ``parent`` is the server's pid: a
    worker must not outlive it, even a ``kill -9`` of it (:func:`_die_with_parent`).
    """
    with contextlib.suppress(OSError):
        os.nice(19)
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)


def _die_with_parent(parent: int, *, prctl: bool = sys.platform.startswith("linux")) -> None:
    """End this process when ``parent`` dies, however it dies.

    On Linux the kernel sends SIGKILL on the parent's death
    (``prctl(PR_SET_PDEATHSIG)``). The signal is tied to the parent thread
    that started the worker: the pool starts workers from the thread that
    submits jobs, the event loop's, which lives as long as the server.
    Elsewhere, or if ``prctl`` fails, a daemon thread watches ``os.getppid()``
    and exits when it changes. Either way, a parent that died before this ran
    is caught by looking at ``os.getppid()`` once armed. ``prctl=False``
    uses the watcher alone (as on other platforms).
    """
    armed = False
    if prctl:
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    if os.getppid() != parent:
        os._exit(1)
    if not armed:
        threading.Thread(
            target=_watch_parent, args=(parent,), name="parent-watch", daemon=True
        ).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def default_processes() -> int:
    """One process per spare core, at least one."""
    return max(1, (os.cpu_count() or 1) - 1)


def _pauses(raw: str | None) -> list[tuple[float, float | None]]:
    out: list[tuple[float, float | None]] = []
    for p in json.loads(raw or "[]"):
        end = p.get("end_s")
        out.append((float(p["start_s"]), None if end is None else float(end)))
    return out


class TranscriptionWorker:
    """Works off the store's transcription queue in a bounded process pool.

    ``numbers`` is the live mapping of number settings (the switchboard's): a
    job whose number no longer has transcription on is dropped, and the
    number's language picks the model. ``processes`` is capped at one per
    spare core; the pool is started at the first job and ended after
    :data:`IDLE_POOL_S` without one.
    """

    def __init__(
        self,
        store: TranscriptionQueue,
        numbers: Mapping[str, NumberConfig],
        *,
        processes: int | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        self.store = store
        self.numbers = numbers
        self.processes = max(1, min(processes or default_processes(), default_processes()))
        self.poll_s = poll_s
        self._slots = asyncio.Semaphore(self.processes)
        self._pool: ProcessPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._jobs: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._idle_since = time.monotonic()

    def start(self) -> None:
        """Resume the queue and keep working it off until :meth:`stop`."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="transcription")

    def wake(self) -> None:
        """Look at the queue now rather than at the next poll (a recording was finished)."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop taking jobs; a job cut short goes back to the queue for the next start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for job in list(self._jobs):
            job.cancel()
        for job in list(self._jobs):
            with contextlib.suppress(asyncio.CancelledError):
                await job
        await self._close_pool()

    async def _run(self) -> None:
        resumed = await self.store.requeue_transcriptions()
        found = await self.store.enqueue_transcriptions()
        if resumed or found:
            log.info("transcription: %d job(s) resumed, %d queued", resumed, found)
        while True:
            if eventloop.cancelling():
                raise asyncio.CancelledError
            await self._slots.acquire()
            try:
                job = await self.store.claim_transcription()
            except Exception:
                self._slots.release()
                if eventloop.cancelling():
                    raise asyncio.CancelledError from None
                log.exception("transcription: the queue could not be read; trying again")
                await eventloop.sleep_or_stop(self.poll_s)
                continue
            if job is None:
                self._slots.release()
                await self._idle()
                continue
            task = asyncio.get_running_loop().create_task(
                self._work(job), name=f"transcribe-{job['recording_id']}"
            )
            self._jobs.add(task)
            task.add_done_callback(self._jobs.discard)

    async def _idle(self) -> None:
        idle_s = time.monotonic() - self._idle_since
        if not self._jobs and self._pool is not None and idle_s > IDLE_POOL_S:
            await self._close_pool()
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a
        # cancellation (stop()) that comes while the wake is being delivered
        # (a job's end sets it), and stop() would then wait for ever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.poll_s):
                await self._wake.wait()
        self._wake.clear()

    async def _work(self, job: dict[str, Any]) -> None:
        rec_id = job["recording_id"]
        try:
            await self._transcribe(job)
        except asyncio.CancelledError:
            # Shutting down: not the job's fault, so the attempt is not counted.
            await self.store.finish_transcription(rec_id, "pending", refund=True)
            raise
        except Exception as exc:
            await self._failed(job, exc)
        finally:
            self._slots.release()
            self._idle_since = time.monotonic()
            self._wake.set()

    async def _transcribe(self, job: dict[str, Any]) -> None:
        rec_id = job["recording_id"]
        if job["path"] is None:
            await self.store.finish_transcription(rec_id, "dropped", "the recording was deleted")
            return
        number = self.numbers.get(job["number"])
        if number is None or not number.transcription:
            await self.store.finish_transcription(
                rec_id, "dropped", "transcription is off for the number"
            )
            return
        if model_for(number.language) is None:
            await self.store.finish_transcription(
                rec_id, "failed", f"no speech recognition model for language {number.language!r}"
            )
            return
        try:
            path = self.store.recording_path(job["path"])
        except NotFound:
            path = None
        if path is None or not path.is_file():
            await self.store.finish_transcription(rec_id, "dropped", "the recording's file is gone")
            return
        try:
            key = await asyncio.to_thread(self.store.file_key, path)
        except NotFound:  # the data key is shredded (KeyDestroyed): erased meanwhile
            await self.store.finish_transcription(rec_id, "dropped", "the recording's key is gone")
            return
        loop = asyncio.get_running_loop()
        # The data key goes to the worker process over its pipe, never to a file or log.
        future = loop.run_in_executor(
            self._executor(),
            transcribe_file,
            str(path),
            _pauses(job["pauses"]),
            number.language,
            key,
        )
        transcript: Transcript = await future
        # Defence in depth: the worker redacted across the channel already.
        segments = [
            {
                "channel": s.channel,
                "start_s": s.start_s,
                "end_s": s.end_s,
                "text": redact(s.text),
                "confidence": s.confidence,
            }
            for s in transcript.segments
        ]
        saved = await self.store.save_transcript(
            rec_id,
            {
                "engine": transcript.engine,
                "model": transcript.model,
                "language": transcript.language,
                "audio_s": transcript.audio_s,
                "cpu_s": transcript.cpu_s,
            },
            segments,
        )
        if not saved:
            await self.store.finish_transcription(
                rec_id, "dropped", "the recording was deleted while it was transcribed"
            )
            return
        log.info(
            "transcribed %s: %d segment(s), %.1f s of audio in %.1f s of CPU",
            rec_id,
            len(segments),
            transcript.audio_s,
            transcript.cpu_s,
        )

    async def _failed(self, job: dict[str, Any], exc: BaseException) -> None:
        rec_id = job["recording_id"]
        if isinstance(exc, BrokenProcessPool):
            await self._close_pool()  # a process died (killed, out of memory): start afresh
        error = f"{type(exc).__name__}: {exc}"[:500]
        final = job["attempts"] >= MAX_ATTEMPTS
        log.warning(
            "transcription of %s failed (attempt %d of %d): %s",
            rec_id,
            job["attempts"],
            MAX_ATTEMPTS,
            error,
        )
        try:
            await self.store.finish_transcription(rec_id, "failed" if final else "pending", error)
        except Exception:
            log.exception("transcription: could not record the failure of %s", rec_id)

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.processes,
                # Spawned, not forked: the server has threads (the store's, the
                # recorder's) whose locks a forked child would inherit held.
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_child_init,
                initargs=(os.getpid(),),
            )
        return self._pool

    async def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(_end_pool, pool)


def _end_pool(pool: ProcessPoolExecutor) -> None:
    """Shut a pool down now, ending a decode in progress rather than waiting for it."""
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        p.terminate()
    for p in processes:
        p.join(5)
