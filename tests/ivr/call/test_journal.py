"""The journal on a fake store: a finished recording is announced once its row is saved."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from ivr.call.journal import CallRecords, Journal
from ivr.call.recorder import DataKeys, RecorderPool, Recording
from ivr.errors import StorageUnavailable
from tests.conftest import noise_frames


class Health:
    failing = False
    reason = ""


class FakeRecords:
    """The part of the store a call writes through, in memory: the edge of these tests."""

    def __init__(self, folder: Path, refuse: int = 0) -> None:
        self.recordings_dir = folder
        self.sealing: DataKeys | None = None  # clear files: sealing has tests of its own
        self.health = Health()
        self.log: list[str] = []
        self.refuse = refuse  # finish_recording fails this many times first (a full disk)

    async def update_call(self, call_id: str, **fields: Any) -> None:
        self.log.append("update_call")

    async def add_events(self, rows: list[tuple[str, str, str, str]]) -> None:
        self.log.append("add_events")

    async def add_consent(self, consent: Mapping[str, Any]) -> str:
        self.log.append("add_consent")
        return "k_1"

    async def create_recording(self, rec: Mapping[str, Any]) -> None:
        self.log.append("create_recording")

    async def finish_recording(self, recording_id: str, **fields: Any) -> None:
        if self.refuse:
            self.refuse -= 1
            raise StorageUnavailable("disk full")
        self.log.append(f"finish_recording {recording_id} {fields['status']}")


@pytest.fixture
def pool() -> Iterator[RecorderPool]:
    p = RecorderPool()
    yield p
    p.shutdown()


def recording(pool: RecorderPool, folder: Path, rec_id: str) -> Recording:
    rec = Recording(pool, rec_id, folder / f"{rec_id}.wav", 8000)
    for f in noise_frames(10):
        rec.add(f, None)
    return rec


@pytest.mark.parametrize("refused", [0, 2])
async def test_a_finished_recording_is_announced_after_its_row_is_saved(
    tmp_path: Path, pool: RecorderPool, refused: int
) -> None:
    fake = FakeRecords(tmp_path, refuse=refused)
    records: CallRecords = fake
    heard: list[str] = []

    def finished(recording_id: str) -> None:
        fake.log.append(f"heard {recording_id}")
        heard.append(recording_id)

    journal = Journal(records, "c_1", finished)
    journal.recording_started({"id": "r_1"})
    journal.recording_stopped(recording(pool, tmp_path, "r_1"))
    journal.ended({"end_reason": "caller"}, [], recording(pool, tmp_path, "r_2"))
    await asyncio.wait_for(journal.saved.wait(), 10)
    # Once each, only after the row that queues it is written (tried again first if refused).
    assert heard == ["r_1", "r_2"]
    assert fake.log == [
        "create_recording",
        "finish_recording r_1 complete",
        "heard r_1",
        "update_call",
        "add_events",
        "finish_recording r_2 complete",
        "heard r_2",
    ]


async def test_a_failing_listener_costs_the_call_nothing(
    tmp_path: Path, pool: RecorderPool
) -> None:
    fake = FakeRecords(tmp_path)

    def broken(recording_id: str) -> None:
        raise RuntimeError("the listener broke")

    journal = Journal(fake, "c_1", broken)
    journal.recording_stopped(recording(pool, tmp_path, "r_1"))
    journal.ended({"end_reason": "caller"}, [], None)
    await asyncio.wait_for(journal.saved.wait(), 10)
    assert fake.log == ["finish_recording r_1 complete", "update_call", "add_events"]
