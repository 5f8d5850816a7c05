"""The store: an embedded SQLite database (WAL) and the recordings folder.

:class:`Store` opens the database, creates and migrates the schema
(``PRAGMA user_version`` counts the migrations applied), owns the shared
connection's write lock and the storage health, and exposes one repository
per aggregate: ``users``, ``catalog``, ``calls``, ``recordings``,
``transcripts``, ``privacy``, ``audit`` and ``analytics``. Those take and
return the typed rows of :mod:`ivr.store.rows`.

It also keeps the few methods the call path and the transcription worker
call through Protocols of their own (:class:`ivr.call.journal.CallRecords`,
:class:`ivr.speech.transcribe.TranscriptionWorker`), with the signatures and
return shapes those expect; each delegates to a repository.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

import aiosqlite

from ivr.errors import StoreError
from ivr.store import dialect
from ivr.store.analytics import AnalyticsRepository
from ivr.store.audit import AuditRepository
from ivr.store.base import Database, StorageHealth
from ivr.store.calls import CallRepository
from ivr.store.catalog import CatalogRepository
from ivr.store.privacy import PrivacyRepository
from ivr.store.recordings import RecordingRepository
from ivr.store.rows import (
    CallFields,
    JobState,
    NewConsent,
    NewRecording,
    NewSegment,
    NewTranscript,
    RecordingEnd,
)
from ivr.store.schema import MIGRATIONS
from ivr.store.transcripts import TranscriptRepository
from ivr.store.users import UserRepository


class Store:
    """Every table of the softswitch, one repository per aggregate, over one connection."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.db_path = data_dir / "ivr.sqlite3"
        self.recordings_dir = data_dir / "recordings"
        self.health = StorageHealth()
        self._database = Database(self.health)
        self.users = UserRepository(self._database)
        self.catalog = CatalogRepository(self._database)
        self.calls = CallRepository(self._database)
        self.recordings = RecordingRepository(self._database, self.recordings_dir)
        self.transcripts = TranscriptRepository(self._database)
        self.privacy = PrivacyRepository(self._database)
        self.audit = AuditRepository(self._database)
        self.analytics = AnalyticsRepository(self._database)

    # -- life cycle ----------------------------------------------------------------

    async def open(self) -> None:
        """Open (or create) the database and bring its schema up to date."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.recordings_dir.mkdir(exist_ok=True)
        conn = await aiosqlite.connect(self.db_path)
        conn.row_factory = aiosqlite.Row
        self._database.attach(conn)
        for pragma in dialect.CONNECT:
            await conn.execute(pragma)
        await self._migrate()

    async def close(self) -> None:
        """Close the connection (a closed store refuses every call with StoreError)."""
        await self._database.close()

    @property
    def db(self) -> aiosqlite.Connection:
        """The raw connection: for migrations and for tests that tamper with rows.

        Everything else goes through the repositories.
        """
        return self._database.conn

    def transaction(self) -> AbstractAsyncContextManager[aiosqlite.Connection]:
        """One unit of work under the write lock (:meth:`ivr.store.base.Database.transaction`)."""
        return self._database.transaction()

    async def schema_version(self) -> int:
        """How many migrations the database has had."""
        return int(await self._database.value(dialect.SCHEMA_VERSION) or 0)

    async def _migrate(self) -> None:
        version = await self.schema_version()
        if version > len(MIGRATIONS):
            raise StoreError(
                f"the database is at schema version {version}, newer than this program "
                f"({len(MIGRATIONS)}); upgrade the program"
            )
        if version == len(MIGRATIONS):
            return
        db = self.db
        # A migration may rebuild a table (SQLite's way to change a constraint):
        # with foreign keys on, dropping the old table would cascade into the
        # rows that point at it. They are checked once everything has run.
        await db.execute(dialect.FOREIGN_KEYS_OFF)
        try:
            for i, step in enumerate(MIGRATIONS[version:], start=version + 1):
                if isinstance(step, str):
                    await db.executescript(
                        f"BEGIN;\n{step}\n{dialect.set_schema_version(i)};\nCOMMIT;"
                    )
                    continue
                await db.execute(dialect.BEGIN)
                try:
                    await step(db)
                    await db.execute(dialect.set_schema_version(i))
                    await db.commit()
                except BaseException:
                    await db.rollback()
                    raise
            broken = await self._database.all(dialect.FOREIGN_KEY_CHECK)
            if broken:
                raise StoreError(f"the migrated database has {len(broken)} broken reference(s)")
        finally:
            await db.execute(dialect.FOREIGN_KEYS_ON)

    # -- what the call path writes through (ivr.call.journal.CallRecords) ------------

    def recording_path(self, relative: str) -> Path:
        """The file of a recording, resolved inside the recordings folder only."""
        return self.recordings.path(relative)

    async def update_call(self, call_id: str, **fields: Any) -> None:
        """Set fields of a call's row (:meth:`ivr.store.calls.CallRepository.update`)."""
        await self.calls.update(call_id, **cast(CallFields, fields))

    async def add_events(self, rows: list[tuple[str, str, str, str]]) -> None:
        """Add (call_id, at, type, data as JSON text) events in one unit."""
        await self.calls.add_events(rows)

    async def add_consent(self, consent: Mapping[str, Any]) -> str:
        """Keep consent evidence given as a mapping of :class:`NewConsent`'s fields."""
        return await self.calls.add_consent(NewConsent(**consent))

    async def create_recording(self, rec: Mapping[str, Any]) -> None:
        """A recording's first row, given as a mapping of :class:`NewRecording`'s fields."""
        values = dict(rec)
        values["transcribe"] = bool(values.get("transcribe", False))
        await self.recordings.create(NewRecording(**values))

    async def finish_recording(self, recording_id: str, **fields: Any) -> None:
        """How a recording ended; ``pauses`` and ``gaps`` may come as JSON text."""
        for key in ("pauses", "gaps"):
            if isinstance(fields.get(key), str):
                fields[key] = json.loads(fields[key])
        await self.recordings.finish(recording_id, **cast(RecordingEnd, fields))

    # -- what the transcription worker calls (ivr.speech.transcribe) ------------------

    async def requeue_transcriptions(self) -> int:
        """At start-up: jobs a stop or crash left running go back to the queue."""
        return await self.transcripts.requeue()

    async def enqueue_transcriptions(self) -> int:
        """Queue every finished recording to transcribe that has no job yet."""
        return await self.transcripts.enqueue()

    async def claim_transcription(self) -> dict[str, Any] | None:
        """Take the oldest pending job, as a dict with its recording's fields.

        The fields (``path``, ``pauses`` as JSON text, ``status``,
        ``sample_rate``, ``number``) are None when the recording was deleted.
        """
        job = await self.transcripts.claim()
        if job is None:
            return None
        out = asdict(job)
        out["pauses"] = None if job.pauses is None else json.dumps(job.pauses)
        return out

    async def finish_transcription(
        self, recording_id: str, state: str, error: str | None = None, *, refund: bool = False
    ) -> None:
        """Set a job's state: ``pending`` again, or final (``done``, ``failed``, ``dropped``)."""
        await self.transcripts.finish(recording_id, cast(JobState, state), error, refund=refund)

    async def save_transcript(
        self,
        recording_id: str,
        transcript: Mapping[str, Any],
        segments: Iterable[Mapping[str, Any]],
    ) -> bool:
        """Store a transcript and mark its job done; False if the recording is gone."""
        return await self.transcripts.save(
            NewTranscript(
                recording_id=recording_id,
                engine=transcript["engine"],
                model=transcript["model"],
                language=transcript["language"],
                audio_s=transcript["audio_s"],
                cpu_s=transcript["cpu_s"],
                segments=tuple(
                    NewSegment(s["channel"], s["start_s"], s["end_s"], s["text"], s["confidence"])
                    for s in segments
                ),
            )
        )


@asynccontextmanager
async def opened(data_dir: Path) -> AsyncIterator[Store]:
    """A store open for the length of a ``with`` block (the CLI's commands use one)."""
    store = Store(data_dir)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
