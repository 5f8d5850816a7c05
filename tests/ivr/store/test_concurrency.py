"""The store under concurrent use: one aiosqlite connection shared by requests and workers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from ivr.store import Store
from tests.ivr.speech.test_transcribe import add_recording, job_state


async def test_claiming_a_transcription_leaves_no_statement_open_for_a_concurrent_commit(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "data")
    await store.open()
    try:
        recordings = [await add_recording(store, np.zeros(800, np.int16)) for _ in range(3)]
        claimed = []
        for _ in recordings:
            # Another coroutine commits (an audit entry, a call row) while the
            # claim runs: the UPDATE ... RETURNING must not still be open then,
            # or SQLite refuses the commit ("SQL statements in progress") and
            # an unrelated API request fails with 500.
            job, _ = await asyncio.gather(store.claim_transcription(), store.db.commit())
            assert job is not None
            claimed.append(job["recording_id"])
        assert sorted(claimed) == sorted(recordings)
        assert [await job_state(store, r) for r in recordings] == ["running"] * 3
    finally:
        await store.close()
