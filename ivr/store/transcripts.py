"""Transcripts, their segments, and the durable queue of transcription jobs.

A recording to transcribe gets its job in the statement that finishes it (a
trigger of the schema); :meth:`TranscriptRepository.enqueue` catches up on
any that lack one. A job is claimed (``running``, one more attempt) and
finished (``done``, ``failed``, ``dropped``, or ``pending`` again).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ivr.errors import StoreError
from ivr.stamp import now_iso
from ivr.store import dialect
from ivr.store.base import Database, Repository, Work
from ivr.store.keyring import KeyDestroyed, Keyring
from ivr.store.rows import (
    ClaimedJob,
    JobRow,
    JobState,
    NewTranscript,
    SegmentRow,
    TranscriptRow,
)

_TABLES = ("transcript_segments", "transcripts", "transcription_jobs")
_SEGMENT = (
    "recording_id",
    "channel",
    "start_s",
    "end_s",
    "text",
    "confidence",
    "engine",
    "model",
)
_HEAD = ("recording_id", "engine", "model", "language", "audio_s", "cpu_s", "created_at")
_JOB = (
    "recording_id",
    "state",
    "attempts",
    "last_error",
    "created_at",
    "updated_at",
    "finished_at",
)
_ENQUEUE = dialect.insert_absent(
    "transcription_jobs",
    ("recording_id", "state", "attempts", "created_at", "updated_at"),
    ("recording_id",),
    select=(
        "SELECT r.id, 'pending', 0, ?, ? FROM recordings r "
        "WHERE r.transcribe = 1 AND r.status IN ('complete', 'interrupted', 'truncated') "
        "AND NOT EXISTS (SELECT 1 FROM transcription_jobs j WHERE j.recording_id = r.id)"
    ),
)


def _claim(skip_locked: str) -> str:
    """Take the oldest pending job; with ``skip_locked``, one no other worker is taking."""
    # On PostgreSQL two workers may look for a job at once: the one row is
    # locked by the first (FOR UPDATE SKIP LOCKED) and the second takes the
    # next, and the outer state check refuses a job finished meanwhile.
    return (
        "UPDATE transcription_jobs SET state = 'running', attempts = attempts + 1, "
        "updated_at = ?, node_id = ? WHERE state = 'pending' AND recording_id = ("
        "SELECT recording_id FROM transcription_jobs WHERE state = 'pending' "
        "ORDER BY created_at, recording_id "
        f"LIMIT 1{skip_locked})" + dialect.returning("recording_id", "attempts")
    )


async def delete_for(db: Work, recording_ids: Sequence[str]) -> None:
    """Delete the recordings' transcripts, segments and jobs inside the caller's unit of work."""
    for table in _TABLES:
        await db.execute(
            f"DELETE FROM {table} WHERE recording_id IN {dialect.in_list(recording_ids)}",
            recording_ids,
        )


SEALED = "sealed1:"
"""How a sealed segment's text begins: then base64 of the nonce and the AES-256-GCM ciphertext."""


def transcript_key_id(recording_id: str) -> str:
    """The id of a transcript's own data key (ivr.store.keyring): not its recording's."""
    return f"{recording_id}.t"


def seal_text(key: bytes, recording_id: str, text: str) -> str:
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(key).encrypt(nonce, text.encode(), recording_id.encode())
    return SEALED + base64.b64encode(nonce + sealed).decode()


def open_text(key: bytes | None, recording_id: str, stored: str) -> str:
    """A segment's text as stored (sealed, or clear from before sealing) in clear."""
    if not stored.startswith(SEALED):
        return stored
    if key is None:
        raise KeyDestroyed(f"the data key of {recording_id}'s transcript is destroyed")
    blob = base64.b64decode(stored[len(SEALED) :])
    try:
        return AESGCM(key).decrypt(blob[:12], blob[12:], recording_id.encode()).decode()
    except InvalidTag:
        raise StoreError(f"a segment of {recording_id}'s transcript does not decrypt") from None


class TranscriptRepository(Repository):
    """``transcripts``, ``transcript_segments`` and ``transcription_jobs``.

    Segment texts are sealed with the transcript's own data key
    (:func:`transcript_key_id`) when ``seal``; the key is destroyed with the
    transcript (:meth:`delete`, and the erasure and retention that call
    :meth:`shred`).
    """

    def __init__(self, db: Database, keys: Callable[[], Keyring], *, seal: bool = True) -> None:
        super().__init__(db)
        self._keys = keys
        self.seal = seal

    def shred(self, recording_ids: Sequence[str]) -> int:
        """Destroy the data keys of these recordings' transcripts; how many there were."""
        keys = self._keys()
        return keys.destroy_many(transcript_key_id(r) for r in recording_ids)

    # -- the queue -------------------------------------------------------------------

    async def requeue(self, spare: Sequence[str] = ()) -> int:
        """At start-up: jobs a stop or crash left running go back to the queue.

        Jobs a node in ``spare`` (the other nodes still alive) is running are its own.
        """
        if not spare:
            return await self._db.write(
                "UPDATE transcription_jobs SET state = 'pending', updated_at = ? "
                "WHERE state = 'running'",
                (now_iso(),),
            )
        return await self._db.write(
            "UPDATE transcription_jobs SET state = 'pending', updated_at = ? WHERE state = "
            f"'running' AND (node_id IS NULL OR node_id NOT IN {dialect.in_list(spare)})",
            (now_iso(), *spare),
        )

    async def enqueue(self) -> int:
        """Queue every finished recording to transcribe that has no job yet."""
        at = now_iso()
        return await self._db.write(_ENQUEUE, (at, at))

    async def claim(self, node_id: str | None = None) -> ClaimedJob | None:
        """Take the oldest pending job (now running, one more attempt, by ``node_id``)."""
        async with self._db.transaction() as db:
            claimed = await db.one(_claim(self._db.dialect.skip_locked), (now_iso(), node_id))
        if claimed is None:
            return None
        rec_id, attempts = claimed["recording_id"], claimed["attempts"]
        rec = await self._db.one(
            "SELECT r.path, r.pauses, r.status, r.sample_rate, c.number FROM recordings r "
            "JOIN calls c ON c.id = r.call_id WHERE r.id = ?",
            (rec_id,),
        )
        if rec is None:
            return ClaimedJob(rec_id, attempts)
        return ClaimedJob(
            rec_id,
            attempts,
            path=rec["path"],
            pauses=json.loads(rec["pauses"] or "[]"),
            status=rec["status"],
            sample_rate=rec["sample_rate"],
            number=rec["number"],
        )

    async def finish(
        self, recording_id: str, state: JobState, error: str | None = None, *, refund: bool = False
    ) -> None:
        """Set a job's state: ``pending`` again, or final (``done``, ``failed``, ``dropped``).

        ``refund``: the attempt did not count (the server stopped under it).
        """
        at = now_iso()
        await self._db.write(
            "UPDATE transcription_jobs SET state = ?, last_error = COALESCE(?, last_error), "
            "attempts = attempts - ?, updated_at = ?, finished_at = ? WHERE recording_id = ?",
            (
                state,
                error,
                int(refund),
                at,
                None if state in ("pending", "running") else at,
                recording_id,
            ),
        )

    async def job(self, recording_id: str) -> JobRow | None:
        """A recording's job, or None if it has none."""
        row = await self._db.one(
            "SELECT * FROM transcription_jobs WHERE recording_id = ?", (recording_id,)
        )
        return None if row is None else JobRow(**{c: row[c] for c in _JOB})

    # -- transcripts -----------------------------------------------------------------

    async def save(self, transcript: NewTranscript) -> bool:
        """Store a transcript with its segments and mark its job done; False if it is gone."""
        rec_id, at = transcript.recording_id, now_iso()
        engine, model = transcript.engine, transcript.model
        if self.seal:
            # A small key file, written on the loop's thread (once per transcript).
            keys, kid = self._keys(), transcript_key_id(rec_id)
            key = keys.key(kid) if keys.has(kid) else keys.new_key(kid)

            def text(t: str) -> str:
                return seal_text(key, rec_id, t)
        else:

            def text(t: str) -> str:
                return t

        rows = [
            (rec_id, s.channel, s.start_s, s.end_s, text(s.text), s.confidence, engine, model)
            for s in transcript.segments
        ]
        head = (
            rec_id,
            transcript.engine,
            transcript.model,
            transcript.language,
            transcript.audio_s,
            transcript.cpu_s,
            at,
        )
        try:
            async with self._db.transaction() as db:
                await db.execute(
                    "DELETE FROM transcript_segments WHERE recording_id = ?", (rec_id,)
                )
                await db.executemany(dialect.insert("transcript_segments", _SEGMENT), rows)
                await db.execute(dialect.upsert("transcripts", _HEAD, ("recording_id",)), head)
                await db.execute(
                    "UPDATE transcription_jobs SET state = 'done', last_error = NULL, "
                    "updated_at = ?, finished_at = ? WHERE recording_id = ?",
                    (at, at, rec_id),
                )
        except self._db.dialect.integrity_failures:  # the recording was deleted meanwhile
            return False
        return True

    async def get(self, recording_id: str) -> TranscriptRow | None:
        """A recording's transcript with its segments in time order, or None."""
        head = await self._db.one(
            "SELECT * FROM transcripts WHERE recording_id = ?", (recording_id,)
        )
        if head is None:
            return None
        rows = await self._db.all(
            f"SELECT {', '.join(_SEGMENT[1:])} FROM transcript_segments "
            "WHERE recording_id = ? ORDER BY start_s, channel, id",
            (recording_id,),
        )
        key: bytes | None = None
        if any(str(r["text"]).startswith(SEALED) for r in rows):
            try:
                key = self._keys().key(transcript_key_id(recording_id))
            except KeyDestroyed:
                key = None
        segments = tuple(
            SegmentRow(
                **{c: r[c] for c in _SEGMENT[1:] if c != "text"},
                text=open_text(key, recording_id, r["text"]),
            )
            for r in rows
        )
        return TranscriptRow(**{c: head[c] for c in _HEAD}, segments=segments)

    async def exists(self, recording_id: str) -> bool:
        """Whether the recording has a transcript."""
        found = await self._db.value(
            "SELECT 1 FROM transcripts WHERE recording_id = ?", (recording_id,)
        )
        return found is not None

    async def count_of(self, recording_ids: Sequence[str]) -> int:
        """How many of these recordings have a transcript."""
        found = await self._db.value(
            f"SELECT COUNT(*) FROM transcripts WHERE recording_id IN "
            f"{dialect.in_list(recording_ids)}",
            recording_ids,
        )
        return int(found or 0)

    async def delete(self, recording_id: str) -> int:
        """Delete a recording's transcript, segments and job; 1 if there was a transcript."""
        async with self._db.transaction() as db:
            deleted = await db.execute(
                "DELETE FROM transcripts WHERE recording_id = ?", (recording_id,)
            )
            await db.execute(
                "DELETE FROM transcript_segments WHERE recording_id = ?", (recording_id,)
            )
            await db.execute(
                "DELETE FROM transcription_jobs WHERE recording_id = ?", (recording_id,)
            )
        self.shred([recording_id])
        return deleted
