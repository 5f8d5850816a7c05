"""Privacy operations: erasure, access export and retention.

Erasure of a contact (a caller number) or an agent deletes their recordings
(files first, then rows), consent records and personal fields, and keeps
call rows only in pseudonymous form: a keyed hash (HMAC-SHA-256 with a
secret kept in the data directory), never the number or the name, so
aggregate analytics still add up. Each erasure is a job row written before
anything is deleted; a crash in the middle leaves the job open and the next
start (:func:`resume_erasures`) completes it. When it completes, the job
forgets its subject and keeps only a receipt with counts.

SQLite runs with ``secure_delete`` on, and the WAL is truncated after an
erasure, so the erased values are not left behind in free pages.

Export builds a ZIP streaming, in bounded memory: rows are written one by
one, recordings are copied in chunks, and ``manifest.json`` lists every
other file with its SHA-256.

Retention deletes recordings whose ``expires_at`` (set when they are made,
from the number's ``retention_days``) has passed; the clock is a parameter.

Transcripts follow their recording everywhere: erased with it (counted in the
receipt), exported with it (``transcripts/<recording_id>.json``), purged with
it. Their rows also cascade from the recording's, so no path that deletes a
recording can leave its transcript behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import hmac
import io
import json
import logging
import os
import secrets
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Literal

from ivr.csvcell import write_row
from ivr.store import Store, expiry, new_id, now_iso
from media.wavfile import PARTIAL_SUFFIX

log = logging.getLogger("ivr.privacy")

Kind = Literal["contact", "agent"]
DEFAULT_EXPORT_WINDOW = timedelta(days=183)


class SubjectNotFound(Exception):
    """No data about that subject."""


def _key(store: Store) -> bytes:
    path = store.data_dir / "pseudonym.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
    return path.read_bytes()


def pseudonym(store: Store, kind: Kind, value: str) -> str:
    """A stable keyed hash standing for a subject; not reversible without the key."""
    digest = hmac.new(_key(store), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
    return f"ps_{digest[:24]}"


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- erasure ---------------------------------------------------------------------


async def erase(store: Store, kind: Kind, subject: str, requested_by: str | None) -> dict[str, Any]:
    """Erase a contact (E.164 number) or an agent (user id); returns the receipt."""
    if kind == "agent" and await store.user_by_id(subject) is None:
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
    transcripts = await _count_transcripts(store, rec_ids)
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
        await _delete_transcripts(store, rec_ids)
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
            user = await store.user_by_id(subject) if subject else None
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


async def _count_transcripts(store: Store, recording_ids: list[str]) -> int:
    marks = ",".join("?" * len(recording_ids)) or "NULL"
    async with store.db.execute(
        f"SELECT COUNT(*) FROM transcripts WHERE recording_id IN ({marks})", recording_ids
    ) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _delete_transcripts(store: Store, recording_ids: list[str]) -> None:
    """Delete the recordings' transcripts, segments and jobs (the caller commits)."""
    marks = ",".join("?" * len(recording_ids)) or "NULL"
    for table in ("transcript_segments", "transcripts", "transcription_jobs"):
        await store.db.execute(
            f"DELETE FROM {table} WHERE recording_id IN ({marks})", recording_ids
        )


async def receipts(store: Store) -> list[dict[str, Any]]:
    async with store.db.execute(
        "SELECT receipt FROM erasure_jobs WHERE receipt IS NOT NULL ORDER BY finished_at"
    ) as cur:
        return [json.loads(r[0]) for r in await cur.fetchall()]


# -- access export -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportRequest:
    kind: Kind
    subject: str  # a number, or a user id
    since: str
    until: str


def default_window(now: datetime | None = None) -> tuple[str, str]:
    now = now or datetime.now(UTC)
    return iso(now - DEFAULT_EXPORT_WINDOW), iso(now + timedelta(seconds=1))


class _Hashing(io.RawIOBase):
    """Passes writes through to a ZIP member, hashing them on the way."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self.sha.update(data)
        self.size += len(data)
        self.target.write(data)
        return len(data)


async def export(store: Store, req: ExportRequest, out: Path) -> dict[str, Any]:
    """Write the subject's ZIP to ``out``; returns the manifest."""
    where = "c.started_at >= ? AND c.started_at < ?"
    args: list[Any] = [req.since, req.until]
    if req.kind == "contact":
        where += " AND p.number = ?"
    else:
        where += " AND c.agent_id = ?"
    args.append(req.subject)
    sql = (
        f"SELECT c.*, p.number AS contact FROM calls c LEFT JOIN contacts p "
        f"ON p.id = c.contact_id WHERE {where} ORDER BY c.started_at"
    )
    async with store.db.execute(sql, args) as cur:
        calls = [dict(r) for r in await cur.fetchall()]
    ids = [c["id"] for c in calls]
    marks = ",".join("?" * len(ids)) or "NULL"
    async with store.db.execute(
        f"SELECT * FROM consents WHERE call_id IN ({marks}) ORDER BY created_at", ids
    ) as cur:
        consents = [
            {**dict(r), "evidence": json.loads(r["evidence"])} for r in await cur.fetchall()
        ]
    async with store.db.execute(
        f"SELECT * FROM recordings WHERE call_id IN ({marks}) AND "
        "status != 'recording' ORDER BY started_at",
        ids,
    ) as cur:
        recordings = [dict(r) for r in await cur.fetchall()]
    rec_ids = [r["id"] for r in recordings]
    rmarks = ",".join("?" * len(rec_ids)) or "NULL"
    async with store.db.execute(
        f"SELECT * FROM qa_notes WHERE recording_id IN ({rmarks})", rec_ids
    ) as cur:
        notes = [dict(r) for r in await cur.fetchall()]
    files = [(r["id"], store.recording_path(r["path"])) for r in recordings]
    transcripts = [
        (rec_id, transcript)
        for rec_id in rec_ids
        if (transcript := await store.transcript(rec_id)) is not None
    ]
    for c in calls:
        for key in ("recording_decision", "stats"):
            if c.get(key):
                c[key] = json.loads(c[key])
    subject = {"kind": req.kind, "value": req.subject}
    return await asyncio.to_thread(
        _write_zip, out, subject, req, calls, consents, recordings, notes, files, transcripts
    )


def _write_zip(
    out: Path,
    subject: dict[str, Any],
    req: ExportRequest,
    calls: list[dict[str, Any]],
    consents: list[dict[str, Any]],
    recordings: list[dict[str, Any]],
    notes: list[dict[str, Any]],
    files: list[tuple[str, Path]],
    transcripts: list[tuple[str, dict[str, Any]]],
) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:

        def member(name: str, rows: Iterable[bytes], stored: bool = False) -> None:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as raw:
                h = _Hashing(raw)
                for chunk in rows:
                    h.write(chunk)
            entries.append({"path": name, "sha256": h.sha.hexdigest(), "bytes": h.size})

        def json_array(items: list[dict[str, Any]]) -> Iterable[bytes]:
            yield b"[\n"
            for i, item in enumerate(items):
                yield (("," if i else "") + json.dumps(item, sort_keys=True) + "\n").encode()
            yield b"]\n"

        member("calls.json", json_array(calls))
        member("calls.csv", _csv_rows(calls))
        member("consents.json", json_array(consents))
        member("recordings.json", json_array(recordings))
        member("notes.json", json_array(notes))
        for rec_id, path in files:
            if path.is_file():
                member(f"recordings/{rec_id}.wav", _chunks(path), stored=True)
        for rec_id, transcript in transcripts:
            body = json.dumps(transcript, indent=2, sort_keys=True).encode()
            member(f"transcripts/{rec_id}.json", [body])
        manifest = {
            "subject": subject,
            "since": req.since,
            "until": req.until,
            "made_at": now_iso(),
            "files": entries,
            "counts": {
                "calls": len(calls),
                "consents": len(consents),
                "recordings": len(files),
                "notes": len(notes),
                "transcripts": len(transcripts),
            },
        }
        zf.writestr("manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
    os.replace(tmp, out)
    return manifest


def _chunks(path: Path) -> Iterable[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(1 << 16):
            yield chunk


CSV_COLUMNS = (
    "id",
    "number",
    "contact",
    "started_at",
    "connected_at",
    "ended_at",
    "end_reason",
    "line",
    "team",
    "agent_id",
    "agent_name",
)


def _csv_rows(calls: list[dict[str, Any]]) -> Iterable[bytes]:
    buf = io.StringIO()
    w = csv.writer(buf)
    write_row(w, CSV_COLUMNS)
    for c in calls:
        # Numbers, names and references as text a spreadsheet will not run.
        write_row(w, [c.get(k) for k in CSV_COLUMNS])
        yield buf.getvalue().encode()
        buf.seek(0)
        buf.truncate()
    if buf.getvalue():
        yield buf.getvalue().encode()


# -- retention -----------------------------------------------------------------------


async def purge_expired(
    store: Store, now: datetime, requested_by: str | None = None
) -> dict[str, Any]:
    """Delete every finished recording whose retention has run out at ``now``."""
    async with store.db.execute(
        "SELECT id, path, size_bytes FROM recordings WHERE status != 'recording' "
        "AND expires_at IS NOT NULL AND expires_at <= ?",
        (iso(now),),
    ) as cur:
        rows = [dict(r) for r in await cur.fetchall()]
    for r in rows:
        with contextlib.suppress(Exception):
            store.recording_path(r["path"]).unlink(missing_ok=True)
    ids = [r["id"] for r in rows]
    transcripts = await _count_transcripts(store, ids)
    receipt = {
        "id": new_id("t"),
        "at": iso(now),
        "requested_by": requested_by,
        "recordings": len(ids),
        "transcripts": transcripts,
        "bytes": sum(r["size_bytes"] or 0 for r in rows),
    }
    async with store.transaction() as db:
        if ids:
            await _delete_transcripts(store, ids)
            await db.execute(
                f"DELETE FROM recordings WHERE id IN ({','.join('?' * len(ids))})", ids
            )
        await db.execute(
            "INSERT INTO retention_runs (id, at, requested_by, recordings, transcripts, bytes) "
            "VALUES (:id, :at, :requested_by, :recordings, :transcripts, :bytes)",
            receipt,
        )
    if ids:
        log.info("retention: deleted %d recording(s)", len(ids))
    return receipt


async def apply_retention(store: Store, number_id: str, retention_days: int) -> int:
    """A number's new ``retention_days`` applies to its existing recordings too."""
    async with store.db.execute(
        "SELECT r.id, r.started_at FROM recordings r JOIN calls c ON c.id = r.call_id "
        "WHERE c.number = ?",
        (number_id,),
    ) as cur:
        rows = list(await cur.fetchall())
    async with store.transaction() as db:
        for r in rows:
            started = datetime.fromisoformat(r["started_at"].replace("Z", "+00:00"))
            await db.execute(
                "UPDATE recordings SET expires_at = ? WHERE id = ?",
                (expiry(retention_days, started), r["id"]),
            )
    return len(rows)
