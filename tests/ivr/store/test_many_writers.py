"""What SQLite's one writer gives, held by PostgreSQL's many: two stores, two pools, one database.

Each test opens two :class:`Store` instances (as two nodes would) on the same
fresh PostgreSQL schema and the same data folder, and has them write at once:
the audit chain stays one chain, each transcription job goes to one worker,
an erasure both resume runs once, and two purges delete each recording once.
Skipped without ``IVR_TEST_POSTGRES`` (failed in CI; see :mod:`tests.postgres`).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ivr.access.audit import AuditLog, verify
from ivr.privacy.erasure import resume_erasures
from ivr.privacy.retention import purge_expired
from ivr.privacy.subject import pseudonym
from ivr.stamp import new_id, now_iso
from ivr.store import ErasureJobRow, Store
from tests.ivr.store.conftest import a_call, a_recording
from tests.postgres import fresh_database


@pytest.fixture
async def two(tmp_path: Path) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores (two connection pools) on one PostgreSQL database and one data folder."""
    async with fresh_database() as dsn:
        first, second = Store(tmp_path / "data", dsn), Store(tmp_path / "data", dsn)
        # Both migrate at once: the migration lock lets one do it, the other finds it done.
        await asyncio.gather(first.open(), second.open())
        try:
            yield first, second
        finally:
            await first.close()
            await second.close()


async def test_two_nodes_appending_at_once_keep_one_unbroken_chain(
    two: tuple[Store, Store],
) -> None:
    logs = [AuditLog(s) for s in two]

    async def writer(log: AuditLog, name: str) -> None:
        for i in range(40):
            await log.record(None, "test.append", "ok", object_id=f"{name}-{i}")

    # Two writers per node, four at once, over two pools.
    await asyncio.gather(*(writer(log, f"{n}{w}") for n, log in enumerate(logs) for w in "ab"))
    for log in logs:
        await log.close()
    for store in two:
        verdict = await verify(store)
        assert (verdict.ok, verdict.entries) == (True, 160), verdict
    entries = await two[0].audit.entries(limit=1000)
    assert len({e.prev_hash for e in entries}) == 160  # no two entries share a tail
    assert [e.seq for e in entries] == sorted(e.seq for e in entries)


async def test_each_transcription_job_goes_to_exactly_one_of_two_nodes_workers(
    two: tuple[Store, Store],
) -> None:
    first, _ = two
    call_id = await a_call(first)
    recordings = [await a_recording(first, call_id, transcribe=True) for _ in range(30)]
    taken: list[tuple[int, str]] = []

    async def worker(node: int, store: Store) -> None:
        while (job := await store.claim_transcription()) is not None:
            taken.append((node, job["recording_id"]))
            await asyncio.sleep(0)  # let the other workers in between claims

    await asyncio.gather(*(worker(n, s) for n, s in enumerate(two) for _ in range(3)))
    counts = Counter(rec for _, rec in taken)
    assert sorted(counts) == sorted(recordings)
    assert set(counts.values()) == {1}  # none taken twice
    assert {node for node, _ in taken} == {0, 1}  # both nodes took some
    for rec in recordings:
        job = await first.transcripts.job(rec)
        assert job is not None
        assert (job.state, job.attempts) == ("running", 1)


async def test_an_erasure_two_nodes_resume_at_once_runs_once(two: tuple[Store, Store]) -> None:
    first, second = two
    caller = "+15557654321"
    calls = [await a_call(first, caller=caller) for _ in range(3)]
    for call_id in calls:
        await a_recording(first, call_id)
    job = ErasureJobRow(
        id=new_id("e"),
        kind="contact",
        subject=caller,
        pseudonym=pseudonym(first, "contact", caller),
        requested_by=None,
        started_at=now_iso(),
    )
    await first.privacy.add_erasure(job)  # then the node crashed: the job is open
    done_first, done_second = await asyncio.gather(resume_erasures(first), resume_erasures(second))
    assert done_first == done_second  # one ran it; the other waited and found its receipt
    [receipt] = done_first
    assert receipt["erased"]["recordings"] == 3
    assert await second.privacy.receipts() == [receipt]
    assert await second.privacy.open_erasures() == []
    assert [(await second.calls.get(c)).contact for c in calls] == [None] * 3


async def test_two_nodes_purging_at_once_delete_and_count_each_recording_once(
    two: tuple[Store, Store],
) -> None:
    first, second = two
    call_id = await a_call(first)
    old = [
        await a_recording(first, call_id, expires_at="2026-01-01T00:00:00.000Z") for _ in range(5)
    ]
    kept = await a_recording(first, call_id, expires_at="2027-01-01T00:00:00.000Z")
    now = datetime(2026, 6, 1, tzinfo=UTC)
    runs = await asyncio.gather(purge_expired(first, now), purge_expired(second, now))
    assert sum(r["recordings"] for r in runs) == len(old)
    assert sum(r["bytes"] for r in runs) == 44 * len(old)
    assert [r.id for r in await second.recordings.for_call(call_id)] == [kept]


APPENDER = """
import asyncio, sys, time
from pathlib import Path
from ivr.access.audit import AuditLog
from ivr.store import Store

async def main(data: str, dsn: str, seconds: float, name: str) -> None:
    store = Store(Path(data), dsn)
    await store.open()
    log = AuditLog(store)
    count = 0
    deadline = time.monotonic() + seconds

    async def writer(w: str) -> None:
        nonlocal count
        while time.monotonic() < deadline:
            await log.record(None, "test.append", "ok", object_id=f"{name}{w}-{count}")
            count += 1

    await asyncio.gather(writer("a"), writer("b"))
    await log.close()
    await store.close()
    print(count)

asyncio.run(main(*sys.argv[1:3], float(sys.argv[3]), sys.argv[4]))
"""


async def test_two_processes_appending_for_a_minute_leave_a_chain_ivr_audit_verify_passes(
    tmp_path: Path,
) -> None:
    """Two processes (as two nodes), two writers each, appending for a minute
    (``IVR_TEST_AUDIT_S`` shortens it locally): one unbroken chain holding every entry."""
    seconds = os.environ.get("IVR_TEST_AUDIT_S", "60")
    async with fresh_database() as dsn:
        first = Store(tmp_path / "data", dsn)
        await first.open()  # migrated once, before the two start
        await first.close()
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                APPENDER,
                str(tmp_path / "data"),
                dsn,
                seconds,
                name,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for name in ("n1", "n2")
        ]
        results = [await p.communicate() for p in procs]
        for proc, (_, err) in zip(procs, results, strict=True):
            assert proc.returncode == 0, err.decode()[-2000:]
        counts = [int(out) for out, _ in results]
        assert min(counts) > 0, counts
        verify_cli = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ivr", "audit", "verify", "--database", dsn,
            "--data", str(tmp_path / "data"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await verify_cli.communicate()
        assert verify_cli.returncode == 0, err.decode()
        assert f"audit log ok: {sum(counts)} entries" in out.decode()


async def test_a_notification_from_one_node_wakes_the_other_nodes_listener(
    two: tuple[Store, Store],
) -> None:
    first, second = two
    wakes = second.listen("ivr_presence")
    assert wakes is not None
    await asyncio.wait_for(anext(wakes), 10)  # listening: read the tables now
    woken = asyncio.ensure_future(anext(wakes))
    await asyncio.sleep(0.2)
    assert not woken.done()  # nothing yet
    await first.notify("ivr_presence")
    await asyncio.wait_for(woken, 5)
    await wakes.aclose()  # type: ignore[attr-defined]
