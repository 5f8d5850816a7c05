"""The store: a database (embedded SQLite by default, or PostgreSQL) and the recordings folder.

:class:`Store` opens the database (:mod:`ivr.store.sqlite` or
:mod:`ivr.store.postgres`), which creates and migrates its schema, owns the
storage health, and exposes one repository
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
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

import aiosqlite

from ivr.errors import NotFound, StoreError
from ivr.stamp import now_iso
from ivr.store.analytics import AnalyticsRepository
from ivr.store.audit import AuditRepository
from ivr.store.base import Database, StorageHealth, Work
from ivr.store.calls import CallRepository
from ivr.store.catalog import CatalogRepository
from ivr.store.dialect import Dialect
from ivr.store.keyring import Keyring, key_folder_for, open_keyring
from ivr.store.nodes import NodeRepository
from ivr.store.presence import PresenceRepository
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
from ivr.store.sqlite import InlineConnection, SqliteDatabase
from ivr.store.transcripts import TranscriptRepository
from ivr.store.users import UserRepository
from media.errors import AudioFileError
from media.sealed import Audio, open_audio, sealed_key_id


def is_postgresql(database: str | None) -> bool:
    """Whether ``database`` names a PostgreSQL server (a ``postgresql://`` URL)."""
    return database is not None and database.startswith(("postgresql://", "postgres://"))


def describe_database(data_dir: Path, database: str | None) -> str:
    """Where the store is, for a log line: the SQLite file, or the DSN without its password."""
    if is_postgresql(database):
        assert database is not None
        from ivr.store.postgres import describe

        return describe(database)
    return f"SQLite in {data_dir / 'ivr.sqlite3'}"


class Store:
    """Every table of the softswitch, one repository per aggregate, over one backend.

    ``database``: None (or empty) for SQLite in ``data_dir/ivr.sqlite3``, or a
    ``postgresql://`` URL (libpq's; its password is never logged). Recording
    files are under ``data_dir/recordings`` either way. ``inline``: SQLite's
    statements run on the event loop's thread, for the simulator's virtual
    clock (:class:`ivr.store.sqlite.InlineConnection`).
    """

    def __init__(
        self,
        data_dir: Path,
        database: str | None = None,
        *,
        inline: bool = False,
        keys: Path | None = None,
        kms: str | None = None,
        seal: bool = True,
    ) -> None:
        self.data_dir = data_dir
        # The data keys of recordings and transcripts (ivr.store.keyring): in ``keys``,
        # by default beside the data folder, never in it. ``seal``: new recordings
        # and transcripts are written encrypted (reading sealed ones needs the keys
        # either way).
        self.key_folder = keys if keys is not None else key_folder_for(data_dir)
        self._kms = kms
        self._keys: Keyring | None = None
        self.seal = seal
        self.db_path = data_dir / "ivr.sqlite3"
        self.recordings_dir = data_dir / "recordings"
        self.health = StorageHealth()
        self._database: Database
        if is_postgresql(database):
            assert database is not None
            from ivr.store.postgres import PostgresDatabase

            self._database = PostgresDatabase(database, self.health)
        elif database:
            raise StoreError("--database takes a postgresql:// URL (SQLite is the default)")
        else:
            self._database = SqliteDatabase(self.db_path, self.health, inline=inline)
        self.users = UserRepository(self._database)
        self.catalog = CatalogRepository(self._database)
        self.calls = CallRepository(self._database)
        self.recordings = RecordingRepository(self._database, self.recordings_dir, self._keyring)
        self.transcripts = TranscriptRepository(self._database, self._keyring, seal=seal)
        self.privacy = PrivacyRepository(self._database)
        self.audit = AuditRepository(self._database)
        self.analytics = AnalyticsRepository(self._database)
        self.nodes = NodeRepository(self._database)
        self.presence = PresenceRepository(self._database)
        # The node this process is (ivr.store.nodes), once the server knows it: its
        # calls and transcription jobs carry it, and its start-up repair takes only
        # its own. None (the CLI commands, one node): everything.
        self.node_id: str | None = None

    def _keyring(self) -> Keyring:
        if self._keys is None:
            self._keys = open_keyring(self.key_folder, self._kms)
        return self._keys

    @property
    def keys(self) -> Keyring:
        """The keyring (opened, and its first KEK made, on first use)."""
        return self._keyring()

    @property
    def sealing(self) -> Keyring | None:
        """The keyring new recordings are sealed with, or None when ``seal`` is off."""
        return self.keys if self.seal else None

    def file_key(self, path: Path) -> bytes | None:
        """The data key a recording file needs, or None for a clear WAV.

        :class:`ivr.store.keyring.KeyDestroyed` if it was shredded (the file is then
        noise to anyone).
        """
        key_id = sealed_key_id(path)
        return None if key_id is None else self.keys.key(key_id)

    def recording_audio(self, relative: str, *, expect_bytes: int | None = None) -> Audio:
        """A recording's file, opened as the plain WAV it holds (sealed or clear).

        Blocking (file reads and a key unwrap): call it off the event loop.
        :class:`ivr.errors.NotFound` for a path outside the recordings folder or
        a missing file, :class:`ivr.store.keyring.KeyDestroyed` for a shredded key,
        :class:`media.errors.AudioFileError` for a damaged file, or one whose
        length is not ``expect_bytes`` (the row's: whole chunks cut off the end).
        """
        path = self.recording_path(relative)
        if not path.is_file():
            raise NotFound("the recording's file is missing")
        audio = open_audio(path, self.keys.key)
        if expect_bytes is not None and audio.size != expect_bytes:
            audio.close()
            raise AudioFileError(
                f"the recording's file holds {audio.size} bytes where its row says {expect_bytes}"
            )
        return audio

    @property
    def dialect(self) -> Dialect:
        """The backend's SQL differences (:mod:`ivr.store.dialect`)."""
        return self._database.dialect

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._database.dialect.name

    @property
    def migrations(self) -> int:
        """How many migrations this program has for its backend."""
        return len(self._database.migrations)

    # -- life cycle ----------------------------------------------------------------

    async def open(self) -> None:
        """Open (or create) the database and bring its schema up to date."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.recordings_dir.mkdir(exist_ok=True)
        await self._database.open()

    async def close(self) -> None:
        """Close the connection(s) (a closed store refuses every call with StoreError)."""
        await self._database.close()
        if self._keys is not None:
            self._keys.close()
            self._keys = None

    async def notify(self, channel: str) -> None:
        """Wake the other nodes listening on ``channel`` (PostgreSQL; nothing on SQLite)."""
        await self._database.notify(channel)

    def listen(self, channel: str) -> AsyncIterator[None] | None:
        """Wake-ups on ``channel`` from other nodes (PostgreSQL), or None (SQLite: poll)."""
        return self._database.listen(channel)

    def refuse_writes(self, refuse: Callable[[], bool] | None) -> None:
        """The simulator's store outage: while ``refuse()``, every write fails as on a bad disk.

        Only for a store opened ``inline`` (:class:`ivr.store.sqlite.InlineConnection`).
        """
        conn = self.db if isinstance(self._database, SqliteDatabase) else None
        if not isinstance(conn, InlineConnection):
            raise StoreError("only a simulated (inline) store can be made to fail")
        conn.refuse_writes = refuse

    @property
    def db(self) -> aiosqlite.Connection:
        """SQLite's raw connection: for tests that tamper with rows (not on PostgreSQL).

        Everything else goes through the repositories.
        """
        if not isinstance(self._database, SqliteDatabase):
            raise StoreError("the raw connection is SQLite's")
        return self._database.conn

    def transaction(self) -> AbstractAsyncContextManager[Work]:
        """One unit of work (:meth:`ivr.store.base.Database.transaction`)."""
        return self._database.transaction()

    async def schema_version(self) -> int:
        """How many migrations the database has had."""
        return await self._database.schema_version()

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
        spare = await self.nodes.others_alive(self.node_id, now_iso())
        return await self.transcripts.requeue(spare)

    async def enqueue_transcriptions(self) -> int:
        """Queue every finished recording to transcribe that has no job yet."""
        return await self.transcripts.enqueue()

    async def claim_transcription(self) -> dict[str, Any] | None:
        """Take the oldest pending job, as a dict with its recording's fields.

        The fields (``path``, ``pauses`` as JSON text, ``status``,
        ``sample_rate``, ``number``) are None when the recording was deleted.
        """
        job = await self.transcripts.claim(self.node_id)
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
async def opened(
    data_dir: Path, database: str | None = None, keys: Path | None = None
) -> AsyncIterator[Store]:
    """A store open for the length of a ``with`` block (the CLI's commands use one)."""
    store = Store(data_dir, database, keys=keys)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
