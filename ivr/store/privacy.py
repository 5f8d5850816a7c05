"""Privacy jobs: erasure jobs (and the erasure's one unit of work), retention runs.

What an erasure or a purge means is :mod:`ivr.privacy`'s; the statements
that carry it out are here. An erasure's job row is written before anything
is deleted, and everything it changes in the database is one transaction
with the job's receipt, so a crash leaves either the job open (and the next
start runs it again) or the whole erasure done.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from ivr.store import dialect
from ivr.store.base import Repository, Row
from ivr.store.rows import ErasureJobRow, ErasureScope, ExpiredRecording, RetentionRun
from ivr.store.transcripts import delete_for

_JOB = ("id", "kind", "subject", "pseudonym", "requested_by", "started_at")
_RUN = ("id", "at", "requested_by", "recordings", "transcripts", "bytes")
Receipt = dict[str, Any]
RETENTION_LOCK = "retention"


_BLOCK = (
    "INSERT INTO recording_blocks (pseudonym, erasure_id, created_at) VALUES (?, ?, ?) "
    "ON CONFLICT (pseudonym) DO UPDATE SET erasure_id = excluded.erasure_id, "
    "created_at = excluded.created_at, lifted_at = NULL, lifted_by = NULL"
)


def _job(row: Row) -> ErasureJobRow:
    receipt = row["receipt"]
    return ErasureJobRow(
        **{c: row[c] for c in _JOB},
        finished_at=row["finished_at"],
        receipt=None if receipt is None else json.loads(receipt),
    )


class PrivacyRepository(Repository):
    """``erasure_jobs`` and ``retention_runs``, and the statements erasure and retention run."""

    # -- erasure ---------------------------------------------------------------------

    async def add_erasure(self, job: ErasureJobRow) -> None:
        """Write an erasure's job, before anything of it is deleted."""
        await self._db.write(dialect.insert("erasure_jobs", _JOB), [getattr(job, c) for c in _JOB])

    async def erasure(self, job_id: str) -> ErasureJobRow | None:
        """An erasure job, open or done."""
        row = await self._db.one("SELECT * FROM erasure_jobs WHERE id = ?", (job_id,))
        return None if row is None else _job(row)

    async def open_erasures(self) -> list[str]:
        """The ids of erasures a crash interrupted, oldest first."""
        rows = await self._db.all(
            "SELECT id FROM erasure_jobs WHERE finished_at IS NULL ORDER BY started_at"
        )
        return [r["id"] for r in rows]

    async def receipts(self) -> list[Receipt]:
        """The receipts of every finished erasure, oldest first."""
        rows = await self._db.all(
            "SELECT receipt FROM erasure_jobs WHERE receipt IS NOT NULL ORDER BY finished_at"
        )
        return [json.loads(r["receipt"]) for r in rows]

    async def _ids(self, sql: str, args: Sequence[Any]) -> tuple[str, ...]:
        return tuple(r[0] for r in await self._db.all(sql, args))

    async def scope(self, job: ErasureJobRow) -> ErasureScope:
        """The contacts, calls and recordings an erasure covers.

        A contact's calls are those of every contact with the number or the
        pseudonym (a run cut short may have pseudonymised some already); an
        agent's, those with their id or the pseudonym.
        """
        if job.kind == "contact":
            contacts = await self._ids(
                "SELECT id FROM contacts WHERE number = ? OR pseudonym = ?",
                (job.subject, job.pseudonym),
            )
            calls = await self._ids(
                f"SELECT id FROM calls WHERE contact_id IN {dialect.in_list(contacts)}", contacts
            )
        else:
            contacts = ()
            calls = await self._ids(
                "SELECT id FROM calls WHERE agent_id IN (?, ?)", (job.subject, job.pseudonym)
            )
        rows = await self._db.all(
            f"SELECT id, path FROM recordings WHERE call_id IN {dialect.in_list(calls)}", calls
        )
        return ErasureScope(contacts, calls, tuple((r["id"], r["path"]) for r in rows))

    async def still_recording(self, scope: ErasureScope) -> list[tuple[str, str | None]]:
        """The scope's recordings still being written: (recording id, the node of its call)."""
        ids = [r for r, _ in scope.recordings]
        rows = await self._db.all(
            "SELECT r.id, c.node_id FROM recordings r JOIN calls c ON c.id = r.call_id "
            f"WHERE r.status = 'recording' AND r.id IN {dialect.in_list(ids)}",
            ids,
        )
        return [(r["id"], r["node_id"]) for r in rows]

    async def erase(
        self, job: ErasureJobRow, scope: ErasureScope, receipt: Callable[[int], Receipt]
    ) -> Receipt:
        """Delete and pseudonymise the rows of ``scope``, and close the job, in one unit.

        ``receipt`` is given the number of consent records deleted and returns
        the receipt to keep; its ``at`` is the job's end. The write-ahead log
        is emptied afterwards, so the erased values are not left in it.
        """
        calls, pseud, subject = list(scope.calls), job.pseudonym, job.subject
        in_calls = dialect.in_list(calls)
        sql = self._db.dialect
        consents = 0
        async with self._db.transaction() as db:
            # The job's row is held to the end of the unit: another process
            # running the same job (two nodes resuming it at start-up) waits
            # here, then finds it done and returns its receipt.
            held = await db.one(
                f"SELECT receipt FROM erasure_jobs WHERE id = ?{sql.lock_row}", (job.id,)
            )
            if held is not None and held["receipt"] is not None:
                done: Receipt = json.loads(held["receipt"])
                return done
            await delete_for(db, scope.recording_ids)
            await db.execute(f"DELETE FROM recordings WHERE call_id IN {in_calls}", calls)
            if job.kind == "contact":
                consents = await db.execute(
                    f"DELETE FROM consents WHERE call_id IN {in_calls}", calls
                )
                await db.execute(
                    # A SIP Call-ID often names the caller's host: it goes with them.
                    "UPDATE calls SET client_ref = NULL, sip_call_id = NULL, subject_erased = 1 "
                    f"WHERE id IN {in_calls}",
                    calls,
                )
                await db.execute(
                    "UPDATE contacts SET number = NULL, pseudonym = ? "
                    f"WHERE id IN {dialect.in_list(scope.contacts)}",
                    [pseud, *scope.contacts],
                )
            else:
                user = await db.one("SELECT name FROM users WHERE id = ?", (subject,))
                if user is not None:  # the name appears in the calls' event trail
                    await db.execute(
                        f"UPDATE call_events SET data = {sql.json_with('data', 'agent')} "
                        f"WHERE call_id IN {in_calls} "
                        f"AND {sql.json_field('data', 'agent')} = ?",
                        [pseud, *calls, user["name"]],
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
            if job.kind == "contact":
                # The right to object (written first by add_block; again here for
                # a job resumed after a crash): not recorded again until lifted.
                await db.execute(_BLOCK, (pseud, job.id, job.started_at))
            kept = receipt(consents)
            await db.execute(
                "UPDATE erasure_jobs SET subject = NULL, finished_at = ?, receipt = ? WHERE id = ?",
                (kept["at"], json.dumps(kept), job.id),
            )
        await self._db.compact()
        return kept

    # -- blocks: callers who objected --------------------------------------------------

    async def add_block(self, pseudonym: str, erasure_id: str, at: str) -> None:
        """This caller objected: not recorded again until an Admin lifts it (pseudonym only)."""
        await self._db.write(_BLOCK, (pseudonym, erasure_id, at))

    async def block_of(self, pseudonym: str) -> Row | None:
        """The caller's block if it is in force (not lifted), else None."""
        return await self._db.one(
            "SELECT * FROM recording_blocks WHERE pseudonym = ? AND lifted_at IS NULL",
            (pseudonym,),
        )

    async def blocks(self) -> list[dict[str, Any]]:
        """Every block, lifted or not, newest first (pseudonyms only: no number is kept)."""
        rows = await self._db.all("SELECT * FROM recording_blocks ORDER BY created_at DESC")
        keys = ("pseudonym", "erasure_id", "created_at", "lifted_at", "lifted_by")
        return [{k: r[k] for k in keys} for r in rows]

    async def lift_block(self, pseudonym: str, by: str, at: str) -> bool:
        """Lift the caller's block; False if none was in force."""
        changed = await self._db.write(
            "UPDATE recording_blocks SET lifted_at = ?, lifted_by = ? "
            "WHERE pseudonym = ? AND lifted_at IS NULL",
            (at, by, pseudonym),
        )
        return changed > 0

    # -- retention -------------------------------------------------------------------

    async def expired(self, at: str) -> list[ExpiredRecording]:
        """Finished recordings whose retention has run out at ``at``."""
        rows = await self._db.all(
            "SELECT id, path, size_bytes FROM recordings WHERE status != 'recording' "
            "AND expires_at IS NOT NULL AND expires_at <= ?",
            (at,),
        )
        return [ExpiredRecording(r["id"], r["path"], r["size_bytes"]) for r in rows]

    async def purge(self, run: RetentionRun, recording_ids: Sequence[str]) -> RetentionRun:
        """Delete the recordings (rows, transcripts) and keep the run's receipt, in one unit.

        Purges run one at a time across processes (the retention lock). A
        recording another purge deleted meanwhile is not counted again: the
        receipt kept, and returned, counts what this one deleted.
        """
        async with self._db.transaction() as db:
            await db.lock(RETENTION_LOCK)
            ids = list(recording_ids)
            if ids:
                rows = await db.all(
                    f"SELECT id, size_bytes FROM recordings WHERE id IN {dialect.in_list(ids)}",
                    ids,
                )
                if len(rows) != len(ids):  # another purge took some first
                    ids = [r["id"] for r in rows]
                    counted = await db.one(
                        f"SELECT COUNT(*) FROM transcripts WHERE recording_id IN "
                        f"{dialect.in_list(ids)}",
                        ids,
                    )
                    run = replace(
                        run,
                        recordings=len(ids),
                        transcripts=0 if counted is None else int(counted[0]),
                        bytes=sum(r["size_bytes"] or 0 for r in rows),
                    )
            if ids:
                await delete_for(db, ids)
                await db.execute(f"DELETE FROM recordings WHERE id IN {dialect.in_list(ids)}", ids)
            await db.execute(
                dialect.insert("retention_runs", _RUN), [getattr(run, c) for c in _RUN]
            )
        return run
