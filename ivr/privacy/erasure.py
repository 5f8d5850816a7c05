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

import asyncio
import contextlib
import logging
from typing import Any

from ivr.e164 import contact_number
from ivr.privacy.subject import Kind, LiveElsewhere, SubjectNotFound, pseudonym
from ivr.stamp import new_id, now_iso
from ivr.store import ErasureJobRow, Store
from media.wavfile import PARTIAL_SUFFIX

log = logging.getLogger("ivr.privacy")


async def erase(
    store: Store,
    kind: Kind,
    subject: str,
    requested_by: str | None,
    *,
    live_stopped: int = 0,
) -> dict[str, Any]:
    """Erase a contact (E.164 number) or an agent (user id); returns the receipt.

    ``live_stopped``: recordings of live calls the caller stopped first
    (:func:`ivr.services.privacy.erase`), listed in the receipt. A contact is
    blocked from being recorded again (``recording_blocks``, by pseudonym)
    until an Admin lifts it.
    """
    if kind == "agent" and await store.users.get(subject) is None:
        raise SubjectNotFound("no such agent")
    if kind == "contact":
        with contextlib.suppress(ValueError):
            subject = contact_number(subject)
    job = ErasureJobRow(
        id=new_id("e"),
        kind=kind,
        subject=subject,
        pseudonym=pseudonym(store, kind, subject),
        requested_by=requested_by,
        started_at=now_iso(),
    )
    await _refuse_live_elsewhere(store, job)
    await store.privacy.add_erasure(job)
    if kind == "contact":
        # Before anything is deleted: a call placed on any node from now on is not recorded.
        await store.privacy.add_block(job.pseudonym, job.id, job.started_at)
    return await _run_job(store, job.id, live_stopped)


async def _refuse_live_elsewhere(store: Store, job: ErasureJobRow) -> None:
    """Refuse, before anything is written, while a live call of the subject records elsewhere.

    Its writer (another node, or the server while this is the ``ivr``
    command) would go on writing a file this erasure deletes, and the caller
    would still see ``recording`` ``on``. A call this process held is stopped
    and saved already (:func:`ivr.services.privacy.erase`); one whose node is
    dead is not live (its node's restart repairs it), and is erased.
    """
    live = await store.privacy.still_recording(await store.privacy.scope(job))
    if not live:
        return
    alive = set(await store.nodes.others_alive(store.node_id, now_iso()))
    for rec_id, node in live:
        if node in alive or (node is None and alive):
            where = f"node {node}" if node else "a running server"
            raise LiveElsewhere(
                f"the subject is on a live recorded call held by {where} (recording "
                f"{rec_id}): erase through that server's API (POST /v1/privacy/erasures), "
                "which stops the recording first, or once the call has ended"
            )


async def resume_erasures(store: Store) -> list[dict[str, Any]]:
    """Complete every erasure a crash interrupted."""
    receipts = []
    for job_id in await store.privacy.open_erasures():
        log.warning("resuming erasure %s", job_id)
        receipts.append(await _run_job(store, job_id))
    return receipts


async def _run_job(store: Store, job_id: str, live_stopped: int = 0) -> dict[str, Any]:
    job = await store.privacy.erasure(job_id)
    assert job is not None
    scope = await store.privacy.scope(job)
    transcripts = await store.transcripts.count_of(scope.recording_ids)
    # Files first: a crash after this point finds rows whose files are gone, and
    # finishes deleting the rows on the next run.
    for _, rel in scope.recordings:
        try:
            path = store.recording_path(rel)
        except Exception:
            continue
        path.unlink(missing_ok=True)
        path.with_name(path.name + PARTIAL_SUFFIX).unlink(missing_ok=True)
    # Crypto-shredding: with the data keys gone, every copy of those files (a
    # backup of the data folder) is noise. Before the rows: a crash here leaves
    # rows whose keys are gone, which the next run deletes.
    ids = list(scope.recording_ids)
    keys_destroyed = await asyncio.to_thread(
        lambda: store.recordings.shred(ids) + store.transcripts.shred(ids)
    )

    def receipt(consents: int) -> dict[str, Any]:
        return {
            "id": job.id,
            "subject": {"kind": job.kind, "pseudonym": job.pseudonym},
            "erased": {
                "recordings": len(scope.recordings),
                "transcripts": transcripts,
                "consents": consents,
                "calls_pseudonymised": len(scope.calls),
                "live_recordings_stopped": live_stopped,
                "data_keys_destroyed": keys_destroyed,
            },
            "recording_blocked": job.kind == "contact",
            "at": now_iso(),
            "requested_by": job.requested_by,
        }

    # One unit of work, taken whole or not at all, with the receipt in it.
    done = await store.privacy.erase(job, scope, receipt)
    log.info("erasure %s done: %s", job_id, done["erased"])
    return done


async def receipts(store: Store) -> list[dict[str, Any]]:
    """The receipts of every finished erasure, oldest first."""
    return await store.privacy.receipts()
