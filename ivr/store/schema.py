"""The schema, as numbered migrations: each runs once, in order, in one transaction.

``PRAGMA user_version`` counts the migrations applied (:meth:`ivr.store.db.Store.open`
runs the missing ones). A migration is a SQL script, or a coroutine for what
SQL alone cannot do. Never edit one that has shipped: add the next.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

import aiosqlite

from ivr.e164 import is_e164, leading_number

# A migration is a SQL script, or a coroutine for what SQL alone cannot do.
# Each runs in one transaction with the ``user_version`` that records it.
Migration = str | Callable[[aiosqlite.Connection], Awaitable[None]]


_CALL_TRANSPORT_COLUMNS = {
    "transport": "TEXT NOT NULL DEFAULT 'ws'",
    "sip_call_id": "TEXT",
    "media": "TEXT",
}


async def _call_transport(db: aiosqlite.Connection) -> None:
    """Migration 7: ``calls.transport`` (``ws``, ``sip``), ``sip_call_id`` and ``media``.

    Columns already there are left alone, so running it again changes nothing.
    """
    async with db.execute("PRAGMA table_info(calls)") as cur:
        have = {row[1] for row in await cur.fetchall()}
    for name, kind in _CALL_TRANSPORT_COLUMNS.items():
        if name not in have:
            await db.execute(f"ALTER TABLE calls ADD COLUMN {name} {kind}")


async def _node_columns(db: aiosqlite.Connection) -> None:
    """Migration 9: ``calls.node_id`` and ``transcription_jobs.node_id`` (if not there yet)."""
    for table in ("calls", "transcription_jobs"):
        async with db.execute(f"PRAGMA table_info({table})") as cur:
            have = {row[1] for row in await cur.fetchall()}
        if "node_id" not in have:
            await db.execute(f"ALTER TABLE {table} ADD COLUMN node_id TEXT")


async def _presence(db: aiosqlite.Connection) -> None:
    """Migration 10: ``nodes.url`` (where the other nodes reach it) and ``agent_presence``."""
    async with db.execute("PRAGMA table_info(nodes)") as cur:
        have = {row[1] for row in await cur.fetchall()}
    if "url" not in have:
        await db.execute("ALTER TABLE nodes ADD COLUMN url TEXT")
    await db.executescript(PRESENCE_TABLE)


PRESENCE_TABLE = """
    CREATE TABLE IF NOT EXISTS agent_presence (
        seat_id TEXT PRIMARY KEY,
        node_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        name TEXT NOT NULL,
        teams TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('not_ready', 'ready', 'offered', 'busy')),
        updated_at TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS agent_presence_node ON agent_presence (node_id);
"""
"""Which agents are signed in on which node (ivr.store.presence), the same on both backends."""


async def _normalise_contacts(db: aiosqlite.Connection) -> None:
    """Migration 6: every stored contact number becomes exactly E.164, or none.

    The dial check used to be unanchored, so a caller id with junk after the
    number (``"+15550001111 x"``, a newline and a fake log line, HTML) was
    stored as a contact of its own, which erasing or exporting the number
    missed. Such a contact is folded into the contact of the number it starts
    with: its calls and consents move there, and the junk row goes. Any other
    value that is not a number keeps its calls but loses the value: the
    number is cleared and a random pseudonym stands in, so no clean number
    ever matches it. Idempotent: a second run finds nothing to change.
    """
    async with db.execute("SELECT id, number FROM contacts WHERE number IS NOT NULL") as cur:
        rows = [(r[0], r[1]) for r in await cur.fetchall()]
    for contact_id, number in rows:
        if is_e164(number):
            continue
        clean = leading_number(number)
        if clean is None:
            await db.execute(
                "UPDATE contacts SET number = NULL, pseudonym = ? WHERE id = ?",
                (f"ps_{secrets.token_hex(12)}", contact_id),
            )
            continue
        async with db.execute("SELECT id FROM contacts WHERE number = ?", (clean,)) as cur:
            found = await cur.fetchone()
        if found is None:  # the first of its kind becomes the number's contact
            await db.execute("UPDATE contacts SET number = ? WHERE id = ?", (clean, contact_id))
            continue
        for table in ("calls", "consents"):
            await db.execute(
                f"UPDATE {table} SET contact_id = ? WHERE contact_id = ?", (found[0], contact_id)
            )
        await db.execute("DELETE FROM contacts WHERE id = ?", (contact_id,))


MIGRATIONS: list[Migration] = [
    # 1: the core schema.
    """
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL UNIQUE COLLATE NOCASE,
        name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('agent', 'supervisor', 'admin', 'owner')),
        password_hash TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE user_teams (
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        team TEXT NOT NULL,
        PRIMARY KEY (user_id, team)
    );
    CREATE TABLE tokens (
        token_hash TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    );
    CREATE TABLE teams (
        id TEXT PRIMARY KEY,
        bots INTEGER NOT NULL DEFAULT 0,
        bot_greeting TEXT
    );
    CREATE TABLE flows (
        id TEXT NOT NULL,
        version TEXT NOT NULL,
        definition TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (id, version)
    );
    CREATE TABLE numbers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        flow TEXT NOT NULL,
        recording INTEGER NOT NULL,
        transcription INTEGER NOT NULL,
        record_percent INTEGER NOT NULL,
        retention_days INTEGER NOT NULL,
        consent_mode TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE contacts (
        id TEXT PRIMARY KEY,
        number TEXT UNIQUE,
        created_at TEXT NOT NULL
    );
    CREATE TABLE calls (
        id TEXT PRIMARY KEY,
        number TEXT NOT NULL,
        contact_id TEXT REFERENCES contacts(id),
        flow_id TEXT NOT NULL,
        flow_version TEXT NOT NULL,
        codec TEXT NOT NULL,
        sample_rate INTEGER NOT NULL,
        client_ref TEXT,
        started_at TEXT NOT NULL,
        connected_at TEXT,
        ended_at TEXT,
        end_reason TEXT,
        line TEXT,
        team TEXT,
        agent_id TEXT,
        agent_name TEXT,
        recording_decision TEXT,
        stats TEXT
    );
    CREATE INDEX calls_started ON calls (started_at);
    CREATE INDEX calls_agent ON calls (agent_id);
    CREATE INDEX calls_contact ON calls (contact_id);
    CREATE TABLE call_events (
        id INTEGER PRIMARY KEY,
        call_id TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
        at TEXT NOT NULL,
        type TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX call_events_call ON call_events (call_id);
    CREATE TABLE consents (
        id TEXT PRIMARY KEY,
        call_id TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
        contact_id TEXT REFERENCES contacts(id),
        number TEXT NOT NULL,
        flow_id TEXT NOT NULL,
        flow_version TEXT NOT NULL,
        consent_mode TEXT NOT NULL,
        decision TEXT NOT NULL,
        digit TEXT,
        digit_at TEXT,
        evidence TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX consents_call ON consents (call_id);
    CREATE TABLE recordings (
        id TEXT PRIMARY KEY,
        call_id TEXT NOT NULL REFERENCES calls(id),
        path TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('recording', 'complete', 'interrupted')),
        started_at TEXT NOT NULL,
        ended_at TEXT,
        duration_s REAL,
        sample_rate INTEGER NOT NULL,
        channels INTEGER NOT NULL,
        format TEXT NOT NULL,
        sha256 TEXT,
        size_bytes INTEGER,
        transcribe INTEGER NOT NULL DEFAULT 0,
        expires_at TEXT
    );
    CREATE INDEX recordings_call ON recordings (call_id);
    CREATE INDEX recordings_started ON recordings (started_at);
    """,
    # 2: the access-control work: current flow versions, QA notes, pauses, audit.
    """
    CREATE TABLE flow_heads (
        id TEXT PRIMARY KEY,
        version TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        source TEXT NOT NULL DEFAULT 'config'
    );
    ALTER TABLE numbers ADD COLUMN source TEXT NOT NULL DEFAULT 'config';
    ALTER TABLE teams ADD COLUMN source TEXT NOT NULL DEFAULT 'config';
    ALTER TABLE recordings ADD COLUMN score INTEGER;
    ALTER TABLE recordings ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE recordings ADD COLUMN pauses TEXT NOT NULL DEFAULT '[]';
    CREATE TABLE qa_notes (
        id TEXT PRIMARY KEY,
        recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
        author_id TEXT,
        text TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE INDEX qa_notes_recording ON qa_notes (recording_id);
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor_id TEXT,
        actor_role TEXT,
        action TEXT NOT NULL,
        object_type TEXT,
        object_id TEXT,
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """,
    # 3: privacy operations.
    """
    ALTER TABLE contacts ADD COLUMN pseudonym TEXT;
    ALTER TABLE calls ADD COLUMN subject_erased INTEGER NOT NULL DEFAULT 0;
    -- The outcome alone (no evidence, nothing personal): analytics survive erasure.
    ALTER TABLE calls ADD COLUMN consent_decision TEXT;
    CREATE TABLE erasure_jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('contact', 'agent')),
        subject TEXT,
        pseudonym TEXT NOT NULL,
        requested_by TEXT,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        receipt TEXT
    );
    CREATE TABLE retention_runs (
        id TEXT PRIMARY KEY,
        at TEXT NOT NULL,
        requested_by TEXT,
        recordings INTEGER NOT NULL,
        bytes INTEGER NOT NULL
    );
    CREATE INDEX recordings_expires ON recordings (expires_at);
    """,
    # 4: transcription: a durable job queue, transcripts and their segments.
    """
    ALTER TABLE numbers ADD COLUMN language TEXT NOT NULL DEFAULT 'en';
    ALTER TABLE retention_runs ADD COLUMN transcripts INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE transcription_jobs (
        recording_id TEXT PRIMARY KEY,
        state TEXT NOT NULL
            CHECK (state IN ('pending', 'running', 'done', 'failed', 'dropped')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        finished_at TEXT
    );
    CREATE INDEX transcription_jobs_state ON transcription_jobs (state, created_at);
    -- A recording to transcribe is queued in the same statement that finishes it
    -- (or marks it interrupted after a crash): no finished recording lacks a job.
    CREATE TRIGGER transcription_enqueue AFTER UPDATE OF status ON recordings
        WHEN NEW.transcribe = 1 AND NEW.status IN ('complete', 'interrupted')
        BEGIN
            INSERT OR IGNORE INTO transcription_jobs
                (recording_id, state, attempts, created_at, updated_at)
            VALUES (NEW.id, 'pending', 0, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                    strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
        END;
    CREATE TRIGGER transcription_enqueue_new AFTER INSERT ON recordings
        WHEN NEW.transcribe = 1 AND NEW.status IN ('complete', 'interrupted')
        BEGIN
            INSERT OR IGNORE INTO transcription_jobs
                (recording_id, state, attempts, created_at, updated_at)
            VALUES (NEW.id, 'pending', 0, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                    strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
        END;
    INSERT OR IGNORE INTO transcription_jobs
        (recording_id, state, attempts, created_at, updated_at)
    SELECT id, 'pending', 0, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
           strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    FROM recordings WHERE transcribe = 1 AND status IN ('complete', 'interrupted');
    CREATE TABLE transcripts (
        recording_id TEXT PRIMARY KEY REFERENCES recordings(id) ON DELETE CASCADE,
        engine TEXT NOT NULL,
        model TEXT NOT NULL,
        language TEXT NOT NULL,
        audio_s REAL NOT NULL,
        cpu_s REAL NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE transcript_segments (
        id INTEGER PRIMARY KEY,
        recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
        channel TEXT NOT NULL CHECK (channel IN ('caller', 'agent')),
        start_s REAL NOT NULL,
        end_s REAL NOT NULL,
        text TEXT NOT NULL,
        confidence REAL NOT NULL,
        engine TEXT NOT NULL,
        model TEXT NOT NULL
    );
    CREATE INDEX transcript_segments_recording ON transcript_segments (recording_id, start_s);
    """,
    # 5: recordings stay on their call's time line: ticks the clock skipped are
    # silence listed in `gaps`; a write that failed (a full disk) ends the file
    # early, as `truncated`, at `truncated_at_s`. SQLite cannot change a CHECK in
    # place, so the table is rebuilt (foreign keys are off while migrating, so
    # dropping the old table cascades to nothing).
    """
    CREATE TABLE recordings_v5 (
        id TEXT PRIMARY KEY,
        call_id TEXT NOT NULL REFERENCES calls(id),
        path TEXT NOT NULL,
        status TEXT NOT NULL
            CHECK (status IN ('recording', 'complete', 'interrupted', 'truncated')),
        started_at TEXT NOT NULL,
        ended_at TEXT,
        duration_s REAL,
        sample_rate INTEGER NOT NULL,
        channels INTEGER NOT NULL,
        format TEXT NOT NULL,
        sha256 TEXT,
        size_bytes INTEGER,
        transcribe INTEGER NOT NULL DEFAULT 0,
        expires_at TEXT,
        score INTEGER,
        tags TEXT NOT NULL DEFAULT '[]',
        pauses TEXT NOT NULL DEFAULT '[]',
        gaps TEXT NOT NULL DEFAULT '[]',
        truncated_at_s REAL,
        truncated_reason TEXT
    );
    INSERT INTO recordings_v5 (id, call_id, path, status, started_at, ended_at, duration_s,
        sample_rate, channels, format, sha256, size_bytes, transcribe, expires_at, score, tags,
        pauses)
    SELECT id, call_id, path, status, started_at, ended_at, duration_s, sample_rate, channels,
        format, sha256, size_bytes, transcribe, expires_at, score, tags, pauses FROM recordings;
    DROP TABLE recordings;
    ALTER TABLE recordings_v5 RENAME TO recordings;
    CREATE INDEX recordings_call ON recordings (call_id);
    CREATE INDEX recordings_started ON recordings (started_at);
    CREATE INDEX recordings_expires ON recordings (expires_at);
    CREATE TRIGGER transcription_enqueue AFTER UPDATE OF status ON recordings
        WHEN NEW.transcribe = 1 AND NEW.status IN ('complete', 'interrupted', 'truncated')
        BEGIN
            INSERT OR IGNORE INTO transcription_jobs
                (recording_id, state, attempts, created_at, updated_at)
            VALUES (NEW.id, 'pending', 0, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                    strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
        END;
    CREATE TRIGGER transcription_enqueue_new AFTER INSERT ON recordings
        WHEN NEW.transcribe = 1 AND NEW.status IN ('complete', 'interrupted', 'truncated')
        BEGIN
            INSERT OR IGNORE INTO transcription_jobs
                (recording_id, state, attempts, created_at, updated_at)
            VALUES (NEW.id, 'pending', 0, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                    strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
        END;
    """,
    # 6: contact numbers with junk after them, from before the anchored check.
    _normalise_contacts,
    # 7: how a call came in (WebSocket or SIP), its SIP Call-ID, its media figures (RTP/RTCP).
    _call_transport,
    # 8: the nodes sharing the store (ivr.store.nodes): one row per ivr serve.
    """
    CREATE TABLE IF NOT EXISTS nodes (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        heartbeat_at TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('ready', 'draining', 'stopped')),
        calls INTEGER NOT NULL DEFAULT 0
    );
    """,
    # 9: which node holds a call, and which runs a transcription job: a node's start-up
    # repair takes only its own (and those from before nodes had ids).
    _node_columns,
    # 10: where a node is reached, and the agents signed in on each node (calls across nodes).
    _presence,
    # 11: callers who objected (erased): not recorded again until an Admin lifts the block.
    """
    CREATE TABLE IF NOT EXISTS recording_blocks (
        pseudonym TEXT PRIMARY KEY,
        erasure_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        lifted_at TEXT,
        lifted_by TEXT
    );
    """,
]
