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

from ivr.errors import NotFound
from ivr.privacy.csvcell import write_row
from ivr.privacy.subject import DEFAULT_EXPORT_WINDOW, Kind
from ivr.stamp import iso, now_iso
from ivr.store import CallRow, RecordingRow, Store
from media.sealed import Audio


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
    if req.kind == "contact":
        call_rows = await store.calls.in_window(req.since, req.until, contact=req.subject)
    else:
        call_rows = await store.calls.in_window(req.since, req.until, agent_id=req.subject)
    ids = [c.id for c in call_rows]
    consents = [c.public() for c in await store.calls.consents_of(ids)]
    recording_rows = await store.recordings.finished_of(ids)
    rec_ids = [r.id for r in recording_rows]
    notes = [asdict(n) for n in await store.recordings.notes_of(rec_ids)]
    files = [(r.id, r.path, r.size_bytes) for r in recording_rows]
    transcripts = [
        (rec_id, asdict(transcript))
        for rec_id in rec_ids
        if (transcript := await store.transcripts.get(rec_id)) is not None
    ]
    calls = [_call_doc(c) for c in call_rows]
    recordings = [_recording_doc(r) for r in recording_rows]
    subject = {"kind": req.kind, "value": req.subject}
    return await asyncio.to_thread(
        _write_zip, store, out, subject, req, calls, consents, recordings, notes, files, transcripts
    )


def _call_doc(call: CallRow) -> dict[str, Any]:
    """A call in ``calls.json``: every column, its contact's number, the decision decoded."""
    doc = asdict(call)
    doc["subject_erased"] = int(call.subject_erased)
    return doc


def _recording_doc(rec: RecordingRow) -> dict[str, Any]:
    """A recording in ``recordings.json``: the recording's own columns as they are stored.

    The QA tags, pauses and gaps stay the JSON text they are in the table,
    and ``transcribe`` the 0 or 1, as exports have always had them.
    """
    doc = {k: getattr(rec, k) for k in RECORDING_COLUMNS}
    doc["transcribe"] = int(rec.transcribe)
    for key in ("tags", "pauses", "gaps"):
        doc[key] = json.dumps(doc[key])
    return doc


RECORDING_COLUMNS = (
    "id",
    "call_id",
    "path",
    "status",
    "started_at",
    "ended_at",
    "duration_s",
    "sample_rate",
    "channels",
    "format",
    "sha256",
    "size_bytes",
    "transcribe",
    "expires_at",
    "score",
    "tags",
    "pauses",
    "gaps",
    "truncated_at_s",
    "truncated_reason",
)


def _write_zip(
    store: Store,
    out: Path,
    subject: dict[str, Any],
    req: ExportRequest,
    calls: list[dict[str, Any]],
    consents: list[dict[str, Any]],
    recordings: list[dict[str, Any]],
    notes: list[dict[str, Any]],
    files: list[tuple[str, str, int | None]],
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
        for rec_id, relative, size in files:
            try:
                audio = store.recording_audio(relative, expect_bytes=size)
            except NotFound:
                continue  # no file (a recording that failed to start): the row says so
            # A damaged file or a shredded key is an error the requester sees.
            with audio:
                member(f"recordings/{rec_id}.wav", _chunks(audio), stored=True)
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


def _chunks(audio: Audio) -> Iterable[bytes]:
    """The plain WAV of a recording (decrypted if sealed), in 64 KiB pieces."""
    pos = 0
    while chunk := audio.read_at(pos, 1 << 16):
        yield chunk
        pos += len(chunk)


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
