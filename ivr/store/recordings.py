"""Recordings (rows and files) and their QA notes.

Recording files live under ``<data>/recordings/``; the repository hands out
paths only through :meth:`RecordingRepository.path`, which refuses anything
that would resolve outside that folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Unpack

from ivr.errors import NotFound, StoreError
from ivr.stamp import new_id, now_iso
from ivr.store import dialect
from ivr.store.base import Database, Repository, Row, decode_cursor, encode_cursor
from ivr.store.keyring import Keyring
from ivr.store.rows import NewRecording, NoteRow, RecordingEnd, RecordingRow

_SELECT = (
    "SELECT r.*, c.agent_id, c.agent_name, c.number, c.line, p.number AS contact "
    "FROM recordings r JOIN calls c ON c.id = r.call_id "
    "LEFT JOIN contacts p ON p.id = c.contact_id"
)
_NEW = (
    "id",
    "call_id",
    "path",
    "status",
    "started_at",
    "sample_rate",
    "channels",
    "format",
    "transcribe",
    "expires_at",
)
_END_FIELDS = frozenset(RecordingEnd.__annotations__)
_JSON_FIELDS = ("pauses", "gaps")
_NOTE = ("id", "recording_id", "author_id", "text", "at")


def recording_row(row: Row) -> RecordingRow:
    """A ``recordings`` row (joined with its call, see ``_SELECT``) as a typed row."""
    keys = row.keys()
    return RecordingRow(
        id=row["id"],
        call_id=row["call_id"],
        path=row["path"],
        status=row["status"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        duration_s=row["duration_s"],
        sample_rate=row["sample_rate"],
        channels=row["channels"],
        format=row["format"],
        sha256=row["sha256"],
        size_bytes=row["size_bytes"],
        transcribe=bool(row["transcribe"]),
        expires_at=row["expires_at"],
        score=row["score"],
        tags=json.loads(row["tags"] or "[]"),
        pauses=json.loads(row["pauses"] or "[]"),
        gaps=json.loads(row["gaps"] or "[]"),
        truncated_at_s=row["truncated_at_s"],
        truncated_reason=row["truncated_reason"],
        **{k: row[k] for k in ("agent_id", "agent_name", "number", "line", "contact") if k in keys},
    )


class RecordingRepository(Repository):
    """``recordings`` and ``qa_notes``, and the folder the recording files are in."""

    def __init__(self, db: Database, folder: Path, keys: Callable[[], Keyring]) -> None:
        super().__init__(db)
        self.folder = folder
        self._keys = keys

    def shred(self, recording_ids: Sequence[str]) -> int:
        """Destroy the recordings' data keys (crypto-shredding); how many there were.

        Every copy of their files (a backup, a restored folder) is noise from now on.
        """
        keys = self._keys()
        return keys.destroy_many(recording_ids)

    def path(self, relative: str) -> Path:
        """The file of a recording, resolved inside the recordings folder only."""
        root = self.folder.resolve()
        path = (root / relative).resolve()
        if not path.is_relative_to(root) or path == root:
            raise NotFound("recording file outside the recordings folder")
        return path

    # -- writes ----------------------------------------------------------------------

    async def create(self, rec: NewRecording) -> None:
        """A recording's row, written before the audio it governs is closed."""
        values = [getattr(rec, c) for c in _NEW]
        values[_NEW.index("transcribe")] = int(rec.transcribe)
        await self._db.write(dialect.insert("recordings", _NEW), values)

    async def finish(self, recording_id: str, **fields: Unpack[RecordingEnd]) -> None:
        """Set how a recording ended (JSON fields are encoded here)."""
        unknown = set(fields) - _END_FIELDS
        if unknown:
            raise StoreError(f"recordings have no field(s) {', '.join(sorted(unknown))}")
        if not fields:
            return
        values = [json.dumps(v) if k in _JSON_FIELDS else v for k, v in fields.items()]
        sets = ", ".join(f"{k} = ?" for k in fields)
        await self._db.write(f"UPDATE recordings SET {sets} WHERE id = ?", [*values, recording_id])

    async def annotate(
        self,
        recording_id: str,
        *,
        score: int | None = None,
        clear_score: bool = False,
        tags: list[str] | None = None,
    ) -> None:
        """Set a QA score (or clear it) and the tags, in one unit."""
        async with self._db.transaction() as db:
            if score is not None or clear_score:
                await db.execute(
                    "UPDATE recordings SET score = ? WHERE id = ?", (score, recording_id)
                )
            if tags is not None:
                await db.execute(
                    "UPDATE recordings SET tags = ? WHERE id = ?", (json.dumps(tags), recording_id)
                )

    async def add_note(self, recording_id: str, author_id: str, text: str) -> NoteRow:
        """A QA note by ``author_id``."""
        note = NoteRow(new_id("n"), recording_id, author_id, text, now_iso())
        await self._db.write(dialect.insert("qa_notes", _NOTE), [getattr(note, c) for c in _NOTE])
        return note

    async def set_expiries(self, expiries: Sequence[tuple[str, str]]) -> None:
        """Give recordings (id, expires_at) a new end of retention, in one unit."""
        async with self._db.transaction() as db:
            for recording_id, expires_at in expiries:
                await db.execute(
                    "UPDATE recordings SET expires_at = ? WHERE id = ?", (expires_at, recording_id)
                )

    async def delete(self, recording_id: str) -> None:
        """Delete a recording's row, then its file and its data key (the call keeps its trace)."""
        rec = await self.get(recording_id)
        try:
            path: Path | None = self.path(rec.path)
        except NotFound:
            path = None
        await self._db.write("DELETE FROM recordings WHERE id = ?", (recording_id,))
        if path is not None:
            path.unlink(missing_ok=True)
        self.shred([recording_id])

    # -- reads -----------------------------------------------------------------------

    async def get(self, recording_id: str) -> RecordingRow:
        """The recording; :class:`NotFound` if there is none."""
        row = await self._db.one(f"{_SELECT} WHERE r.id = ?", (recording_id,))
        if row is None:
            raise NotFound(f"no recording {recording_id}")
        return recording_row(row)

    async def notes(self, recording_id: str) -> list[NoteRow]:
        """A recording's QA notes, oldest first."""
        rows = await self._db.all(
            "SELECT * FROM qa_notes WHERE recording_id = ? ORDER BY at", (recording_id,)
        )
        return [NoteRow(*(r[c] for c in _NOTE)) for r in rows]

    async def notes_of(self, recording_ids: Sequence[str]) -> list[NoteRow]:
        """The QA notes of several recordings."""
        rows = await self._db.all(
            f"SELECT * FROM qa_notes WHERE recording_id IN {dialect.in_list(recording_ids)}",
            recording_ids,
        )
        return [NoteRow(*(r[c] for c in _NOTE)) for r in rows]

    async def for_call(self, call_id: str) -> list[RecordingRow]:
        """A call's recordings, oldest first (one still being written included)."""
        rows = await self._db.all(
            f"{_SELECT} WHERE r.call_id = ? ORDER BY r.started_at", (call_id,)
        )
        return [recording_row(r) for r in rows]

    async def finished_of(self, call_ids: Sequence[str]) -> list[RecordingRow]:
        """The finished recordings of several calls, oldest first."""
        rows = await self._db.all(
            f"{_SELECT} WHERE r.call_id IN {dialect.in_list(call_ids)} "
            "AND r.status != 'recording' ORDER BY r.started_at",
            call_ids,
        )
        return [recording_row(r) for r in rows]

    async def started_of_number(self, number_id: str) -> list[tuple[str, str]]:
        """(id, started_at) of every recording of calls to ``number_id``."""
        rows = await self._db.all(
            "SELECT r.id, r.started_at FROM recordings r JOIN calls c ON c.id = r.call_id "
            "WHERE c.number = ?",
            (number_id,),
        )
        return [(r["id"], r["started_at"]) for r in rows]

    async def unfinished(self, spare: Sequence[str] = ()) -> list[RecordingRow]:
        """Recordings still marked ``recording``: after a crash, the ones cut off.

        Those of calls held by a node in ``spare`` (the other nodes still
        alive) are left out: they are being written there.
        """
        if not spare:
            rows = await self._db.all(f"{_SELECT} WHERE r.status = 'recording'")
        else:
            rows = await self._db.all(
                f"{_SELECT} WHERE r.status = 'recording' "
                f"AND (c.node_id IS NULL OR c.node_id NOT IN {dialect.in_list(spare)})",
                tuple(spare),
            )
        return [recording_row(r) for r in rows]

    async def page(
        self,
        *,
        agent_id: str | None = None,
        contact: str | None = None,
        since: str | None = None,
        until: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[RecordingRow], str | None]:
        """Finished recordings newest first, ``limit`` at a time, and the next page's cursor."""
        where: list[str] = ["r.status != 'recording'"]
        args: list[Any] = []
        for cond, value in (
            ("c.agent_id = ?", agent_id),
            ("p.number = ?", contact),
            ("r.started_at >= ?", since),
            ("r.started_at < ?", until),
        ):
            if value is not None:
                where.append(cond)
                args.append(value)
        if cursor:
            started, rid = decode_cursor(cursor)
            where.append("(r.started_at, r.id) < (?, ?)")
            args += [started, rid]
        sql = f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY r.started_at DESC, r.id DESC LIMIT ?"
        rows = await self._db.all(sql, [*args, limit + 1])
        items = [recording_row(r) for r in rows[:limit]]
        last = rows[limit - 1] if len(rows) > limit else None
        return items, None if last is None else encode_cursor(last["started_at"], last["id"])
