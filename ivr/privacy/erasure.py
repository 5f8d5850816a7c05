"""Erasure of a contact or an agent, crash-safe, with a receipt.

Erasure of a contact (a caller number) or an agent deletes their recordings
(files first, then rows), consent records and personal fields, and keeps
call rows only in pseudonymous form (:func:`ivr.privacy.subject.pseudonym`),
so aggregate analytics still add up. Each erasure is a job row written
before anything is deleted; a crash in the middle leaves the job open and
the next start (:func:`resume_erasures`) completes it. When it completes,
the job forgets its subject and keeps only a receipt with counts.

SQLite runs with ``secure_delete`` on, and the WAL is truncated after an
erasure, so the erased values are not left behind in free pages.
Transcripts follow their recording: erased with it, counted in the receipt.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from ivr.privacy.subject import (
    Kind,
    SubjectNotFound,
    count_transcripts,
    delete_transcripts,
    pseudonym,
)
from ivr.stamp import new_id, now_iso
from ivr.store import Store
from media.wavfile import PARTIAL_SUFFIX

log = logging.getLogger("ivr.privacy")


async def erase(store: Store, kind: Kind, subject: str, requested_by: str | None) -> dict[str, Any]:
    """Erase a contact (E.164 number) or an agent (user id); returns the receipt."""
    if kind == "agent" and await store.users.get(subject) is None:
        raise SubjectNotFound("no such agent")
    job_id = new_id("e")
    async with store.transaction() as db:
        await db.execute(
            "INSERT INTO erasure_jobs (id, kind, subject, pseudonym, requested_by, started_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (job_id, kind, subject, pseudonym(store, kind, subject), requested_by, now_iso()),
        )
    return await _run_job(store, job_id)


async def resume_erasures(store: Store) -> list[dict[str, Any]]:
    """Complete every erasure a crash interrupted."""
    async with store.db.execute(
        "SELECT id FROM erasure_jobs WHERE finished_at IS NULL ORDER BY started_at"
    ) as cur:
        jobs = [r["id"] for r in await cur.fetchall()]
    receipts = []
    for job_id in jobs:
        log.warning("resuming erasure %s", job_id)
        receipts.append(await _run_job(store, job_id))
    return receipts


async def _ids(store: Store, sql: str, args: Iterable[Any]) -> list[str]:
    async with store.db.execute(sql, tuple(args)) as cur:
        return [r[0] for r in await cur.fetchall()]


async def _run_job(store: Store, job_id: str) -> dict[str, Any]:
    async with store.db.execute("SELECT * FROM erasure_jobs WHERE id = ?", (job_id,)) as cur:
        job = await cur.fetchone()
    assert job is not None
    kind, subject, pseud = job["kind"], job["subject"], job["pseudonym"]
    db = store.db
    if kind == "contact":
        contacts = await _ids(
            store, "SELECT id FROM contacts WHERE number = ? OR pseudonym = ?", (subject, pseud)
        )
        marks = ",".join("?" * len(contacts)) or "NULL"
        calls = await _ids(store, f"SELECT id FROM calls WHERE contact_id IN ({marks})", contacts)
    else:
        calls = await _ids(store, "SELECT id FROM calls WHERE agent_id IN (?, ?)", (subject, pseud))
        contacts = []
    cmarks = ",".join("?" * len(calls)) or "NULL"
    async with db.execute(
        f"SELECT id, path FROM recordings WHERE call_id IN ({cmarks})", calls
    ) as cur:
        recordings = [(r["id"], r["path"]) for r in await cur.fetchall()]
    rec_ids = [rec_id for rec_id, _ in recordings]
    transcripts = await count_transcripts(store, rec_ids)
    # Files first: a crash after this point finds rows whose files are gone, and
    # finishes deleting the rows on the next run.
    for _, rel in recordings:
        try:
            path = store.recording_path(rel)
        except Exception:
            continue
        path.unlink(missing_ok=True)
        path.with_name(path.name + PARTIAL_SUFFIX).unlink(missing_ok=True)
    consents = 0
    # One transaction, taken whole or not at all (and no other writer's statements in it).
    async with store.transaction() as db:
        await delete_transcripts(store, rec_ids)
        await db.execute(f"DELETE FROM recordings WHERE call_id IN ({cmarks})", calls)
        if kind == "contact":
            cur2 = await db.execute(f"DELETE FROM consents WHERE call_id IN ({cmarks})", calls)
            consents = max(cur2.rowcount, 0)
            await db.execute(
                f"UPDATE calls SET client_ref = NULL, subject_erased = 1 WHERE id IN ({cmarks})",
                calls,
            )
            await db.execute(
                f"UPDATE contacts SET number = NULL, pseudonym = ? "
                f"WHERE id IN ({','.join('?' * len(contacts)) or 'NULL'})",
                [pseud, *contacts],
            )
        else:
            user = await store.users.get(subject) if subject else None
            if user is not None:  # the name appears in the calls' event trail
                await db.execute(
                    f"UPDATE call_events SET data = json_set(data, '$.agent', ?) "
                    f"WHERE call_id IN ({cmarks}) AND json_extract(data, '$.agent') = ?",
                    [pseud, *calls, user.name],
                )
            await db.execute(
                "UPDATE calls SET agent_id = ?, agent_name = NULL, "
                "subject_erased = 1 WHERE agent_id IN (?, ?)",
                (pseud, subject, pseud),
            )
            await db.execute(
                "UPDATE qa_notes SET author_id = ? WHERE author_id = ?", (pseud, subject)
            )
            await db.execute("DELETE FROM users WHERE id = ?", (subject,))
        receipt = {
            "id": job_id,
            "subject": {"kind": kind, "pseudonym": pseud},
            "erased": {
                "recordings": len(recordings),
                "transcripts": transcripts,
                "consents": consents,
                "calls_pseudonymised": len(calls),
            },
            "at": now_iso(),
            "requested_by": job["requested_by"],
        }
        await db.execute(
            "UPDATE erasure_jobs SET subject = NULL, finished_at = ?, receipt = ? WHERE id = ?",
            (receipt["at"], json.dumps(receipt), job_id),
        )
    await store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    log.info("erasure %s done: %s", job_id, receipt["erased"])
    return receipt


async def receipts(store: Store) -> list[dict[str, Any]]:
    async with store.db.execute(
        "SELECT receipt FROM erasure_jobs WHERE receipt IS NOT NULL ORDER BY finished_at"
    ) as cur:
        return [json.loads(r[0]) for r in await cur.fetchall()]
