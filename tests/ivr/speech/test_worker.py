"""The transcription worker on a fake queue: it looks at once when woken, not only when it polls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ivr.config import NumberConfig
from ivr.speech.worker import TranscriptionQueue, TranscriptionWorker

NUMBERS = {"+15550100": NumberConfig(name="Support", flow="f", transcription=True)}


class FakeQueue:
    """The store's transcription queue, in memory: the edge of these tests."""

    def __init__(self) -> None:
        self.pending: list[dict[str, Any]] = []
        self.claims = 0
        self.finished: list[tuple[str, str]] = []
        self.changed = asyncio.Event()

    async def requeue_transcriptions(self) -> int:
        return 0

    async def enqueue_transcriptions(self) -> int:
        return 0

    async def claim_transcription(self) -> dict[str, Any] | None:
        self.claims += 1
        return self.pending.pop(0) if self.pending else None

    async def finish_transcription(
        self, recording_id: str, state: str, error: str | None = None, *, refund: bool = False
    ) -> None:
        self.finished.append((recording_id, state))
        self.changed.set()

    async def save_transcript(
        self,
        recording_id: str,
        transcript: Mapping[str, Any],
        segments: Iterable[Mapping[str, Any]],
    ) -> bool:
        raise AssertionError("nothing is decoded here")

    def recording_path(self, relative: str) -> Path:
        raise AssertionError("no file is looked at here")

    def file_key(self, path: Path) -> bytes | None:
        raise AssertionError("no key is looked at here")


def deleted_recording(rec_id: str) -> dict[str, Any]:
    """A job whose recording is gone: the worker drops it without a process."""
    return {"recording_id": rec_id, "path": None, "number": None, "pauses": None, "attempts": 1}


async def test_a_wake_makes_the_worker_look_at_once() -> None:
    queue = FakeQueue()
    typed: TranscriptionQueue = queue  # the store's protocol, as the server passes it
    worker = TranscriptionWorker(typed, NUMBERS, poll_s=60.0)
    worker.start()
    try:
        for _ in range(50):  # the first look finds nothing; then it waits for a wake or a poll
            await asyncio.sleep(0.01)
        assert queue.claims == 1
        queue.pending.append(deleted_recording("r_1"))
        await asyncio.sleep(0.2)
        assert queue.finished == []  # a minute's poll would find it; nothing looked yet
        worker.wake()
        await asyncio.wait_for(queue.changed.wait(), 2.0)
        assert queue.finished == [("r_1", "dropped")]
    finally:
        await asyncio.wait_for(worker.stop(), 5.0)


async def test_without_a_wake_the_poll_still_finds_work() -> None:
    queue = FakeQueue()
    worker = TranscriptionWorker(queue, NUMBERS, poll_s=0.05)
    worker.start()
    try:
        await asyncio.sleep(0.1)
        queue.pending.append(deleted_recording("r_2"))
        await asyncio.wait_for(queue.changed.wait(), 2.0)
        assert queue.finished == [("r_2", "dropped")]
    finally:
        await asyncio.wait_for(worker.stop(), 5.0)


async def test_a_stop_that_comes_as_a_job_ends_still_stops() -> None:
    """The job's end wakes the worker in the very step stop() cancels it (a Python 3.11
    wait_for would swallow that cancellation, and the server's shutdown would hang)."""
    for attempt in range(5):
        queue = FakeQueue()
        worker = TranscriptionWorker(queue, NUMBERS, poll_s=0.05)
        worker.start()
        queue.pending.append(deleted_recording(f"r_{attempt}"))
        await asyncio.wait_for(queue.changed.wait(), 2.0)
        started = time.monotonic()
        await asyncio.wait_for(worker.stop(), 5.0)
        assert time.monotonic() - started < 1.0  # not the 5 s of this test's own limit
        assert queue.finished == [(f"r_{attempt}", "dropped")]
