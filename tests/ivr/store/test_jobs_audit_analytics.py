"""Transcripts, privacy jobs, the audit table and analytics, each on a real database."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from ivr.errors import StorageUnavailable
from ivr.stamp import now_iso
from ivr.store import (
    ClaimedJob,
    ErasureJobRow,
    NewSegment,
    NewTranscript,
    RetentionRun,
    Store,
)
from tests.ivr.store.conftest import a_call, a_recording, storage_failure

HEAD = {"engine": "pocketsphinx", "model": "en-us", "language": "en", "audio_s": 1.5, "cpu_s": 0.2}


def transcript(rec_id: str, *texts: str) -> NewTranscript:
    segments = tuple(
        NewSegment("caller", float(i), i + 0.5, text, 0.9) for i, text in enumerate(texts)
    )
    return NewTranscript(rec_id, **HEAD, segments=segments)  # type: ignore[arg-type]


# -- transcription ---------------------------------------------------------------------


async def test_the_queue_claims_oldest_first_and_finishes_and_requeues(store: Store) -> None:
    call_id = await a_call(store)
    first = await a_recording(store, call_id, transcribe=True)
    await asyncio.sleep(0.01)  # queued a moment later (the queue orders by time)
    second = await a_recording(store, call_id, transcribe=True)
    await a_recording(store, call_id)  # not to transcribe: never queued
    assert await store.transcripts.enqueue() == 0  # the trigger queued both already
    job = await store.transcripts.claim()
    assert isinstance(job, ClaimedJob)
    assert (job.recording_id, job.attempts, job.number, job.pauses) == (first, 1, "+15550100", [])
    await store.transcripts.finish(first, "failed", "boom")
    failed = await store.transcripts.job(first)
    assert failed is not None
    assert (failed.state, failed.last_error, failed.finished_at is not None) == (
        "failed",
        "boom",
        True,
    )
    claimed = await store.transcripts.claim()
    assert claimed is not None
    assert claimed.recording_id == second
    assert await store.transcripts.claim() is None
    assert await store.transcripts.requeue() == 1  # the running one, after a stop
    await store.transcripts.finish(second, "pending", refund=True)
    again = await store.transcripts.job(second)
    assert again is not None
    assert (again.state, again.attempts) == ("pending", 0)


async def test_a_claimed_job_of_a_deleted_recording_has_no_fields(store: Store) -> None:
    rec_id = await a_recording(store, await a_call(store), transcribe=True)
    await store.recordings.delete(rec_id)
    job = await store.transcripts.claim()
    assert job == ClaimedJob(rec_id, 1)
    assert await store.claim_transcription() is None  # nothing else waits


async def test_transcripts_round_trip_and_go_with_their_recording(store: Store) -> None:
    rec_id = await a_recording(store, await a_call(store), transcribe=True)
    assert await store.transcripts.save(transcript(rec_id, "first", "second"))
    assert await store.transcripts.save(transcript(rec_id, "again"))  # replaces, whole
    got = await store.transcripts.get(rec_id)
    assert got is not None
    assert (got.engine, got.language, [s.text for s in got.segments]) == (
        "pocketsphinx",
        "en",
        ["again"],
    )
    assert got.segments[0].model == "en-us"
    done = await store.transcripts.job(rec_id)
    assert done is not None
    assert done.state == "done"
    assert await store.transcripts.exists(rec_id)
    assert await store.transcripts.count_of([rec_id, "r_other"]) == 1
    assert await store.transcripts.delete(rec_id) == 1
    assert (await store.transcripts.get(rec_id), await store.transcripts.job(rec_id)) == (
        None,
        None,
    )
    await store.recordings.delete(rec_id)
    assert not await store.transcripts.save(transcript(rec_id, "late"))  # the recording is gone


async def test_the_workers_interface_keeps_its_dict_and_mappings(store: Store) -> None:
    """What :mod:`ivr.speech.transcribe` calls, with the shapes it reads and sends."""
    rec_id = await a_recording(store, await a_call(store), transcribe=True)
    assert (await store.requeue_transcriptions(), await store.enqueue_transcriptions()) == (0, 0)
    job = await store.claim_transcription()
    assert job == {
        "recording_id": rec_id,
        "attempts": 1,
        "path": f"t/{rec_id}.wav",
        "pauses": "[]",
        "status": "complete",
        "sample_rate": 8000,
        "number": "+15550100",
    }
    segment = {"channel": "agent", "start_s": 0.0, "end_s": 1.0, "text": "hi", "confidence": 1.0}
    assert await store.save_transcript(rec_id, HEAD, [segment])
    await store.finish_transcription(rec_id, "done")
    got = await store.transcripts.get(rec_id)
    assert got is not None
    assert [(s.channel, s.text) for s in got.segments] == [("agent", "hi")]


# -- privacy jobs ----------------------------------------------------------------------


async def test_an_erasure_job_its_scope_and_its_one_unit_of_work(store: Store) -> None:
    call_id = await a_call(store, sip_call_id="1-4242@192.0.2.10")
    rec_id = await a_recording(store, call_id, transcribe=True)
    assert await store.transcripts.save(transcript(rec_id, "x"))
    job = ErasureJobRow("e_1", "contact", "+15557654321", "ps_abc", "u_admin", now_iso())
    await store.privacy.add_erasure(job)
    assert await store.privacy.open_erasures() == ["e_1"]
    assert await store.privacy.erasure("e_1") == job
    scope = await store.privacy.scope(job)
    assert (scope.calls, scope.recordings) == ((call_id,), ((rec_id, f"t/{rec_id}.wav"),))

    def receipt(consents: int) -> dict[str, Any]:
        return {"id": job.id, "consents": consents, "at": "2026-01-01T00:00:00.000Z"}

    kept = await store.privacy.erase(job, scope, receipt)
    assert kept == receipt(0)
    assert await store.privacy.open_erasures() == []
    done = await store.privacy.erasure("e_1")
    assert done is not None
    assert (done.subject, done.receipt, done.finished_at) == (None, kept, kept["at"])
    assert await store.privacy.receipts() == [kept]
    call = await store.calls.get(call_id)
    assert (call.contact, call.client_ref, call.subject_erased) == (None, None, True)
    assert (call.transport, call.sip_call_id) == ("sip", None)  # the Call-ID names a host
    assert await store.recordings.for_call(call_id) == []
    assert await store.transcripts.job(rec_id) is None


async def test_an_erasure_whose_receipt_fails_changes_nothing(store: Store) -> None:
    call_id = await a_call(store)
    await a_recording(store, call_id)
    job = ErasureJobRow("e_2", "contact", "+15557654321", "ps_abc", None, now_iso())
    await store.privacy.add_erasure(job)

    def broken(consents: int) -> dict[str, Any]:
        raise RuntimeError("no receipt")

    with pytest.raises(RuntimeError):
        await store.privacy.erase(job, await store.privacy.scope(job), broken)
    assert len(await store.recordings.for_call(call_id)) == 1  # rolled back, whole
    assert (await store.calls.get(call_id)).contact == "+15557654321"
    assert await store.privacy.open_erasures() == ["e_2"]


async def test_retention_finds_the_expired_and_purges_them_with_a_receipt(store: Store) -> None:
    call_id = await a_call(store)
    old = await a_recording(store, call_id, expires_at="2026-01-01T00:00:00.000Z")
    await a_recording(store, call_id, expires_at="2027-01-01T00:00:00.000Z")
    await a_recording(store, call_id, expires_at="2025-01-01T00:00:00.000Z", finish=False)
    expired = await store.privacy.expired("2026-06-01T00:00:00.000Z")
    assert [(r.id, r.size_bytes) for r in expired] == [(old, 44)]
    run = RetentionRun("t_1", "2026-06-01T00:00:00.000Z", None, 1, 0, 44)
    await store.privacy.purge(run, [old])
    assert await store.privacy.expired("2026-06-01T00:00:00.000Z") == []
    assert len(await store.recordings.for_call(call_id)) == 2


# -- the audit table ---------------------------------------------------------------------


def content(action: str) -> dict[str, Any]:
    return {
        "at": now_iso(),
        "actor_id": "u_1",
        "actor_role": "admin",
        "action": action,
        "object_type": "user",
        "object_id": "u_2",
        "outcome": "ok",
        "detail": {"b": 1, "a": [2]},
    }


async def test_audit_appends_after_the_tail_and_reads_back_in_order(store: Store) -> None:
    async with store.audit.appending() as tail:
        assert tail.last_hash is None
        await tail.add(content("users.create"), "0" * 64, "h1")
        await tail.add(content("users.update"), "h1", "h2")
    async with store.audit.appending() as tail:
        assert tail.last_hash == "h2"
        await tail.add(content("users.delete"), "h2", "h3")
    entries = await store.audit.entries()
    assert [(e.seq, e.action, e.prev_hash, e.hash) for e in entries] == [
        (1, "users.create", "0" * 64, "h1"),
        (2, "users.update", "h1", "h2"),
        (3, "users.delete", "h2", "h3"),
    ]
    assert entries[0].detail == {"a": [2], "b": 1}
    assert entries[0].content()["detail"] == entries[0].detail
    assert [e.seq for e in await store.audit.entries(after=1, action="users.delete")] == [3]
    assert await store.audit.entries(actor_id="u_other") == []
    async with contextlib.aclosing(store.audit.walk()) as walk:
        assert [e.hash async for e in walk] == ["h1", "h2", "h3"]
    for statement in ("DELETE FROM audit", "UPDATE audit SET outcome = 'ok'"):
        with pytest.raises(Exception, match="append-only"):
            async with store.transaction() as db:
                await db.execute(statement)


async def refused_append(store: Store) -> None:
    async with store.audit.appending() as tail:
        await tail.add(content("users.create"), "0" * 64, "h1")
        raise storage_failure(store, "disk I/O error")


async def test_an_append_the_disk_refuses_keeps_nothing_of_it(store: Store) -> None:
    with pytest.raises(StorageUnavailable):
        await refused_append(store)
    assert await store.audit.entries() == []


# -- analytics ---------------------------------------------------------------------------


async def test_analytics_counts_calls_by_team_and_agent_and_usage(store: Store) -> None:
    answered = await a_call(store, started_at="2026-01-01T00:00:00.000Z")
    await store.calls.update(
        answered,
        team="support",
        agent_id="u_ana",
        connected_at="2026-01-01T00:00:00.000Z",
        ended_at="2026-01-01T00:01:00.000Z",
        consent_decision="granted",
        recording_decision={"record": True},
    )
    await a_recording(store, answered)
    missed = await a_call(store, started_at="2026-01-01T00:00:00.000Z")
    await store.calls.update(
        missed, team="support", ended_at="2026-01-01T00:00:30.000Z", consent_decision="refused"
    )
    await a_call(store, started_at="2025-01-01T00:00:00.000Z")  # before the range
    since, until = "2026-01-01T00:00:00.000Z", "2026-02-01T00:00:00.000Z"
    [total] = await store.analytics.totals(since, until)
    assert (total.key, total.calls, total.answered, total.recorded) == ("all", 2, 1, 1)
    assert (total.consent_asked, total.consent_granted) == (2, 1)
    assert total.average_handle_s == pytest.approx(60.0)
    assert [(t.key, t.calls) for t in await store.analytics.totals(since, until, by="team")] == [
        ("support", 2)
    ]
    agents = await store.analytics.totals(since, until, by="agent")
    assert [(t.key, t.calls) for t in agents] == [("u_ana", 1)]  # answered calls only
    await store.users.add("o@example.com", "O", "owner", "h")
    await store.users.add("a@example.com", "A", "agent", "h")
    usage = await store.analytics.usage(since, until)
    assert usage.minutes == pytest.approx(1.5)
    assert usage.recorded_minutes == pytest.approx(1.5 / 60)
    assert (usage.storage_bytes, usage.seats) == (44, 1)
