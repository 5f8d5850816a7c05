"""Access export: a ZIP of everything about a contact or an agent over a date range.

Built streaming, in bounded memory: rows are written one by one, recordings
are copied in chunks, and ``manifest.json`` lists every other file with its
SHA-256. Transcripts go with their recording (``transcripts/<id>.json``).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from ivr.privacy.csvcell import write_row
from ivr.privacy.subject import DEFAULT_EXPORT_WINDOW, Kind
from ivr.stamp import iso, now_iso
from ivr.store import Store


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
        (rec_id, asdict(transcript))
        for rec_id in rec_ids
        if (transcript := await store.transcripts.get(rec_id)) is not None
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
