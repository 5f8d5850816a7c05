"""The store: an embedded SQLite database (WAL) and the recordings folder.

The schema is created and migrated by the program itself (``PRAGMA
user_version`` counts the migrations applied). One aiosqlite connection
serialises every statement on its own thread, so the event loop never waits
on the disk. Recording files live under ``<data>/recordings/``; the store
hands out paths only through :meth:`Store.recording_path`, which refuses
anything that would resolve outside that folder.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiosqlite

from ivr.e164 import contact_number
from ivr.errors import NotFound, StorageUnavailable, StoreError
from ivr.stamp import new_id, now_iso
from ivr.store.schema import MIGRATIONS

log = logging.getLogger("ivr.store")

Role = Literal["agent", "supervisor", "admin", "owner"]
ROLES: tuple[Role, ...] = ("agent", "supervisor", "admin", "owner")


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    name: str
    role: Role
    teams: tuple[str, ...]

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "role": self.role,
            "teams": list(self.teams),
        }


def _encode_cursor(started_at: str, row_id: str) -> str:
    return base64.urlsafe_b64encode(f"{started_at}|{row_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[str, str]:
    """Parse a page cursor; :class:`StoreError` for anything not made by us."""
    try:
        started_at, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StoreError("bad cursor") from exc
    return started_at, row_id


class StorageHealth:
    """Whether the store's writes succeed, as an operator should see it.

    One log line when writes start failing (with the database's own words,
    say ``database or disk is full``), one when they succeed again. The
    listeners (the ``/metrics`` gauge and counter) hear ``True`` for every
    failed write and ``False`` once writes succeed again.
    """

    def __init__(self) -> None:
        self.failing = False
        self.reason = ""
        self.failures = 0
        self.listeners: list[Callable[[bool], None]] = []

    def failed(self, reason: str) -> None:
        self.failures += 1
        if not self.failing:
            self.failing, self.reason = True, reason
            log.error(
                "storage: writes are failing (%s); calls are refused and unsaved data is "
                "kept in memory and written when the disk recovers",
                reason,
            )
        for listener in self.listeners:
            listener(True)

    def succeeded(self) -> None:
        if self.failing:
            self.failing = False
            log.warning("storage: writes succeed again (they failed with: %s)", self.reason)
            for listener in self.listeners:
                listener(False)


class Store:
    """Every table of the softswitch, behind one small async interface."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.db_path = data_dir / "ivr.sqlite3"
        self.recordings_dir = data_dir / "recordings"
        self._db: aiosqlite.Connection | None = None
        # One unit of work at a time on the shared connection (see transaction()).
        self._write_lock = asyncio.Lock()
        self.health = StorageHealth()

    # -- life cycle ----------------------------------------------------------

    async def open(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.recordings_dir.mkdir(exist_ok=True)
        self._db = await aiosqlite.connect(self.db_path)
        self._db.row_factory = aiosqlite.Row
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.execute("PRAGMA foreign_keys=ON")
        # Deleted rows are overwritten, so an erased number is not left in free pages.
        await self._db.execute("PRAGMA secure_delete=ON")
        await self._migrate()

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("the store is not open")
        return self._db

    async def _migrate(self) -> None:
        async with self.db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        if version > len(MIGRATIONS):
            raise StoreError(
                f"the database is at schema version {version}, newer than this program "
                f"({len(MIGRATIONS)}); upgrade the program"
            )
        if version == len(MIGRATIONS):
            return
        # A migration may rebuild a table (SQLite's way to change a constraint):
        # with foreign keys on, dropping the old table would cascade into the
        # rows that point at it. They are checked once everything has run.
        await self.db.execute("PRAGMA foreign_keys=OFF")
        try:
            for i, step in enumerate(MIGRATIONS[version:], start=version + 1):
                if isinstance(step, str):
                    await self.db.executescript(
                        f"BEGIN;\n{step}\nPRAGMA user_version = {i};\nCOMMIT;"
                    )
                    continue
                await self.db.execute("BEGIN")
                try:
                    await step(self.db)
                    await self.db.execute(f"PRAGMA user_version = {i}")
                    await self.db.commit()
                except BaseException:
                    await self.db.rollback()
                    raise
            async with self.db.execute("PRAGMA foreign_key_check") as cur:
                broken = list(await cur.fetchall())
            if broken:
                raise StoreError(f"the migrated database has {len(broken)} broken reference(s)")
        finally:
            await self.db.execute("PRAGMA foreign_keys=ON")

    async def schema_version(self) -> int:
        async with self.db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def _one(self, sql: str, args: Iterable[Any] = ()) -> aiosqlite.Row | None:
        async with self.db.execute(sql, tuple(args)) as cur:
            return await cur.fetchone()

    async def _all(self, sql: str, args: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        async with self.db.execute(sql, tuple(args)) as cur:
            return list(await cur.fetchall())

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One unit of work: committed whole at the end, or rolled back whole on an error.

        Every writer shares one connection, so without this lock one
        coroutine's commit would also commit another's half-done statements,
        and a rollback after a failed commit (a full disk) would silently drop
        them. Reads need no lock.
        """
        async with self._write_lock:
            db = self.db
            changes = db.total_changes
            try:
                yield db
                await db.commit()
            except sqlite3.OperationalError as exc:  # SQLITE_FULL, SQLITE_IOERR, ...
                with contextlib.suppress(Exception):
                    await db.rollback()
                self.health.failed(str(exc))
                raise StorageUnavailable(f"the database refused a write: {exc}") from exc
            except BaseException:
                with contextlib.suppress(Exception):
                    await db.rollback()
                raise
            # Only a commit that wrote something shows the disk takes writes again
            # (one that changed nothing succeeds even on a full disk).
            if db.total_changes != changes:
                self.health.succeeded()

    async def _write(self, sql: str, args: Iterable[Any] | Mapping[str, Any] = ()) -> None:
        async with self.transaction() as db:
            await db.execute(sql, args if isinstance(args, Mapping) else tuple(args))

    # -- users and tokens ----------------------------------------------------

    async def create_user(
        self, email: str, name: str, role: Role, password_hash: str, teams: Iterable[str] = ()
    ) -> User:
        user_id = new_id("u")
        team_list = tuple(dict.fromkeys(teams))
        try:
            async with self.transaction() as db:
                await db.execute(
                    "INSERT INTO users (id, email, name, role, password_hash, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (user_id, email, name, role, password_hash, now_iso()),
                )
                await db.executemany(
                    "INSERT INTO user_teams (user_id, team) VALUES (?, ?)",
                    [(user_id, t) for t in team_list],
                )
        except aiosqlite.IntegrityError as exc:
            raise StoreError(f"a user with e-mail {email} already exists") from exc
        return User(user_id, email, name, role, team_list)

    async def _user(self, row: aiosqlite.Row | None) -> User | None:
        if row is None:
            return None
        teams = await self._all(
            "SELECT team FROM user_teams WHERE user_id = ? ORDER BY team", (row["id"],)
        )
        return User(
            row["id"], row["email"], row["name"], row["role"], tuple(t["team"] for t in teams)
        )

    async def user_by_id(self, user_id: str) -> User | None:
        return await self._user(await self._one("SELECT * FROM users WHERE id = ?", (user_id,)))

    async def user_credentials(self, email: str) -> tuple[User, str] | None:
        """The user with this e-mail and their password hash."""
        row = await self._one("SELECT * FROM users WHERE email = ?", (email,))
        user = await self._user(row)
        if user is None or row is None:
            return None
        return user, str(row["password_hash"])

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._write(
            "UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)
        )

    async def update_user(
        self,
        user_id: str,
        *,
        name: str | None = None,
        role: Role | None = None,
        teams: Iterable[str] | None = None,
        password_hash: str | None = None,
    ) -> User:
        sets = {
            k: v
            for k, v in (("name", name), ("role", role), ("password_hash", password_hash))
            if v is not None
        }
        async with self.transaction() as db:
            if sets:
                await db.execute(
                    f"UPDATE users SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
                    (*sets.values(), user_id),
                )
            if teams is not None:
                await db.execute("DELETE FROM user_teams WHERE user_id = ?", (user_id,))
                await db.executemany(
                    "INSERT INTO user_teams (user_id, team) VALUES (?, ?)",
                    [(user_id, t) for t in dict.fromkeys(teams)],
                )
            if password_hash is not None or role is not None:
                # A new password or role signs the user out everywhere.
                await db.execute("DELETE FROM tokens WHERE user_id = ?", (user_id,))
        user = await self.user_by_id(user_id)
        if user is None:
            raise NotFound(f"no user {user_id}")
        return user

    async def delete_user(self, user_id: str) -> None:
        await self._write("DELETE FROM users WHERE id = ?", (user_id,))

    async def list_users(self) -> list[User]:
        rows = await self._all("SELECT * FROM users ORDER BY email")
        return [u for r in rows if (u := await self._user(r)) is not None]

    async def add_token(self, token_hash: str, user_id: str, expires_at: str) -> None:
        await self._write(
            "INSERT INTO tokens (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
            (token_hash, user_id, now_iso(), expires_at),
        )

    async def session_for_token(self, token_hash: str, now: str) -> tuple[User, str] | None:
        """The user of an unexpired token and the token's ``expires_at``."""
        row = await self._one(
            "SELECT u.*, t.expires_at AS token_expires_at FROM tokens t "
            "JOIN users u ON u.id = t.user_id WHERE t.token_hash = ? AND t.expires_at > ?",
            (token_hash, now),
        )
        user = await self._user(row)
        if user is None or row is None:
            return None
        return user, str(row["token_expires_at"])

    async def delete_token(self, token_hash: str) -> None:
        await self._write("DELETE FROM tokens WHERE token_hash = ?", (token_hash,))

    # -- numbers, teams, flows -----------------------------------------------

    async def source_of(self, table: str, row_id: str) -> str | None:
        """Who last set a number, team or flow head: 'config', 'api', or None if absent."""
        assert table in ("numbers", "teams", "flow_heads")
        row = await self._one(f"SELECT source FROM {table} WHERE id = ?", (row_id,))
        return None if row is None else str(row["source"])

    async def save_number(
        self, number_id: str, settings: Mapping[str, Any], source: str = "config"
    ) -> None:
        await self._write(
            "INSERT INTO numbers (id, name, flow, recording, transcription, record_percent, "
            "retention_days, consent_mode, updated_at, source, language) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET name = excluded.name, flow = excluded.flow, "
            "recording = excluded.recording, transcription = excluded.transcription, "
            "record_percent = excluded.record_percent, retention_days = excluded.retention_days, "
            "consent_mode = excluded.consent_mode, updated_at = excluded.updated_at, "
            "source = excluded.source, language = excluded.language",
            (
                number_id,
                settings["name"],
                settings["flow"],
                int(settings["recording"]),
                int(settings["transcription"]),
                settings["record_percent"],
                settings["retention_days"],
                settings["consent_mode"],
                now_iso(),
                source,
                settings.get("language", "en"),
            ),
        )

    async def has_row(self, table: str, row_id: str) -> bool:
        assert table in ("numbers", "teams", "flow_heads", "users")
        return await self._one(f"SELECT 1 FROM {table} WHERE id = ?", (row_id,)) is not None

    async def save_team(
        self, team_id: str, bots: int, bot_greeting: str | None, source: str = "config"
    ) -> None:
        await self._write(
            "INSERT INTO teams (id, bots, bot_greeting, source) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET bots = excluded.bots, "
            "bot_greeting = excluded.bot_greeting, source = excluded.source",
            (team_id, bots, bot_greeting, source),
        )

    async def save_flow(self, flow_id: str, version: str, definition: Mapping[str, Any]) -> None:
        await self._write(
            "INSERT OR IGNORE INTO flows (id, version, definition, created_at) VALUES (?, ?, ?, ?)",
            (flow_id, version, json.dumps(definition), now_iso()),
        )

    async def list_numbers(self) -> list[dict[str, Any]]:
        return [_number(r) for r in await self._all("SELECT * FROM numbers ORDER BY id")]

    async def list_teams(self) -> list[dict[str, Any]]:
        return [dict(r) for r in await self._all("SELECT * FROM teams ORDER BY id")]

    async def delete_team(self, team_id: str) -> None:
        async with self.transaction() as db:
            await db.execute("DELETE FROM teams WHERE id = ?", (team_id,))
            await db.execute("DELETE FROM user_teams WHERE team = ?", (team_id,))

    async def set_flow_head(self, flow_id: str, version: str, source: str = "config") -> None:
        await self._write(
            "INSERT INTO flow_heads (id, version, updated_at, source) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET version = excluded.version, "
            "updated_at = excluded.updated_at, source = excluded.source",
            (flow_id, version, now_iso(), source),
        )

    async def current_flows(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(id, version, definition) of every flow's current version."""
        rows = await self._all(
            "SELECT f.id, f.version, f.definition FROM flow_heads h "
            "JOIN flows f ON f.id = h.id AND f.version = h.version ORDER BY f.id"
        )
        return [(r["id"], r["version"], json.loads(r["definition"])) for r in rows]

    async def flow_versions(self, flow_id: str) -> list[dict[str, Any]]:
        rows = await self._all(
            "SELECT version, created_at FROM flows WHERE id = ? ORDER BY created_at", (flow_id,)
        )
        return [dict(r) for r in rows]

    # -- contacts and calls --------------------------------------------------

    async def contact_id(self, number: str) -> str:
        """The contact for a caller number, created on first sight.

        Only an E.164 number is kept (:func:`ivr.e164.contact_number`): anything
        else is a :class:`StoreError`, so junk never becomes a contact.
        """
        try:
            number = contact_number(number)
        except ValueError as exc:
            raise StoreError(str(exc)) from None
        await self._write(
            "INSERT INTO contacts (id, number, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (number) DO NOTHING",
            (new_id("p"), number, now_iso()),
        )
        row = await self._one("SELECT id FROM contacts WHERE number = ?", (number,))
        assert row is not None
        return str(row["id"])

    async def create_call(self, call: Mapping[str, Any]) -> None:
        cols = ", ".join(call)
        marks = ", ".join("?" for _ in call)
        await self._write(f"INSERT INTO calls ({cols}) VALUES ({marks})", call.values())

    async def update_call(self, call_id: str, **fields: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        values = [json.dumps(v) if isinstance(v, dict | list) else v for v in fields.values()]
        await self._write(f"UPDATE calls SET {sets} WHERE id = ?", [*values, call_id])

    async def add_event(self, call_id: str, at: str, kind: str, data: Mapping[str, Any]) -> None:
        await self._write(
            "INSERT INTO call_events (call_id, at, type, data) VALUES (?, ?, ?, ?)",
            (call_id, at, kind, json.dumps(data)),
        )

    async def add_events(self, rows: list[tuple[str, str, str, str]]) -> None:
        async with self.transaction() as db:
            await db.executemany(
                "INSERT INTO call_events (call_id, at, type, data) VALUES (?, ?, ?, ?)", rows
            )

    _CALL_SELECT = (
        "SELECT c.*, p.number AS contact FROM calls c LEFT JOIN contacts p ON p.id = c.contact_id"
    )

    async def get_call(self, call_id: str) -> dict[str, Any]:
        row = await self._one(f"{self._CALL_SELECT} WHERE c.id = ?", (call_id,))
        if row is None:
            raise NotFound(f"no call {call_id}")
        return _call(row)

    async def list_calls(
        self, *, agent_id: str | None = None, cursor: str | None = None, limit: int = 50
    ) -> tuple[list[dict[str, Any]], str | None]:
        where, args = [], []
        if agent_id is not None:
            where.append("c.agent_id = ?")
            args.append(agent_id)
        if cursor:
            started, cid = decode_cursor(cursor)
            where.append("(c.started_at, c.id) < (?, ?)")
            args += [started, cid]
        sql = self._CALL_SELECT + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY c.started_at DESC, c.id DESC LIMIT ?"
        rows = await self._all(sql, [*args, limit + 1])
        items = [_call(r) for r in rows[:limit]]
        nxt = (
            _encode_cursor(rows[limit - 1]["started_at"], rows[limit - 1]["id"])
            if len(rows) > limit
            else None
        )
        return items, nxt

    async def call_events(self, call_id: str) -> list[dict[str, Any]]:
        """Every event of a call (bounded by the session's limit per call)."""
        rows = await self._all(
            "SELECT at, type, data FROM call_events WHERE call_id = ? ORDER BY id", (call_id,)
        )
        return [{"at": r["at"], "type": r["type"], **json.loads(r["data"])} for r in rows]

    async def call_events_page(
        self, call_id: str, *, after: int = 0, limit: int = 500
    ) -> tuple[list[dict[str, Any]], int | None]:
        """One page of a call's events, oldest first, and the ``after`` of the next page."""
        rows = await self._all(
            "SELECT id, at, type, data FROM call_events WHERE call_id = ? AND id > ? "
            "ORDER BY id LIMIT ?",
            (call_id, after, limit + 1),
        )
        items = [{"at": r["at"], "type": r["type"], **json.loads(r["data"])} for r in rows[:limit]]
        return items, (int(rows[limit - 1]["id"]) if len(rows) > limit else None)

    # -- consent evidence ----------------------------------------------------

    async def add_consent(self, consent: Mapping[str, Any]) -> str:
        consent_id = new_id("k")
        row = {
            **consent,
            "id": consent_id,
            "created_at": now_iso(),
            "evidence": json.dumps(consent["evidence"]),
        }
        cols = ", ".join(row)
        await self._write(
            f"INSERT INTO consents ({cols}) VALUES ({', '.join('?' for _ in row)})", row.values()
        )
        return consent_id

    async def consents_for_call(self, call_id: str) -> list[dict[str, Any]]:
        rows = await self._all(
            "SELECT * FROM consents WHERE call_id = ? ORDER BY created_at", (call_id,)
        )
        return [{**dict(r), "evidence": json.loads(r["evidence"])} for r in rows]

    # -- recordings ----------------------------------------------------------

    def recording_path(self, relative: str) -> Path:
        """The file of a recording, resolved inside the recordings folder only."""
        root = self.recordings_dir.resolve()
        path = (root / relative).resolve()
        if not path.is_relative_to(root) or path == root:
            raise NotFound("recording file outside the recordings folder")
        return path

    async def create_recording(self, rec: Mapping[str, Any]) -> None:
        cols = ", ".join(rec)
        await self._write(
            f"INSERT INTO recordings ({cols}) VALUES ({', '.join('?' for _ in rec)})", rec.values()
        )

    async def finish_recording(self, recording_id: str, **fields: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        await self._write(
            f"UPDATE recordings SET {sets} WHERE id = ?", [*fields.values(), recording_id]
        )

    _REC_SELECT = (
        "SELECT r.*, c.agent_id, c.agent_name, c.number, c.line, p.number AS contact "
        "FROM recordings r JOIN calls c ON c.id = r.call_id "
        "LEFT JOIN contacts p ON p.id = c.contact_id"
    )

    async def get_recording(self, recording_id: str) -> dict[str, Any]:
        row = await self._one(f"{self._REC_SELECT} WHERE r.id = ?", (recording_id,))
        if row is None:
            raise NotFound(f"no recording {recording_id}")
        return dict(row)

    async def update_recording(
        self,
        recording_id: str,
        *,
        score: int | None = None,
        clear_score: bool = False,
        tags: list[str] | None = None,
    ) -> None:
        async with self.transaction() as db:
            if score is not None or clear_score:
                await db.execute(
                    "UPDATE recordings SET score = ? WHERE id = ?", (score, recording_id)
                )
            if tags is not None:
                await db.execute(
                    "UPDATE recordings SET tags = ? WHERE id = ?", (json.dumps(tags), recording_id)
                )

    async def add_note(self, recording_id: str, author_id: str, text: str) -> dict[str, Any]:
        note = {
            "id": new_id("n"),
            "recording_id": recording_id,
            "author_id": author_id,
            "text": text,
            "at": now_iso(),
        }
        await self._write(
            "INSERT INTO qa_notes (id, recording_id, author_id, text, at) "
            "VALUES (:id, :recording_id, :author_id, :text, :at)",
            note,
        )
        return note

    async def notes(self, recording_id: str) -> list[dict[str, Any]]:
        return [
            dict(r)
            for r in await self._all(
                "SELECT * FROM qa_notes WHERE recording_id = ? ORDER BY at", (recording_id,)
            )
        ]

    async def delete_recording(self, recording_id: str) -> None:
        """Delete a recording's file and its row (the call keeps its decision trace)."""
        rec = await self.get_recording(recording_id)
        try:
            path = self.recording_path(rec["path"])
        except NotFound:
            path = None
        await self._write("DELETE FROM recordings WHERE id = ?", (recording_id,))
        if path is not None:
            path.unlink(missing_ok=True)

    async def recordings_for_call(self, call_id: str) -> list[dict[str, Any]]:
        return [
            dict(r)
            for r in await self._all(
                f"{self._REC_SELECT} WHERE r.call_id = ? ORDER BY r.started_at", (call_id,)
            )
        ]

    async def list_recordings(
        self,
        *,
        agent_id: str | None = None,
        contact: str | None = None,
        since: str | None = None,
        until: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[dict[str, Any]], str | None]:
        where, args = ["r.status != 'recording'"], []
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
        sql = (
            f"{self._REC_SELECT} WHERE {' AND '.join(where)} "
            "ORDER BY r.started_at DESC, r.id DESC LIMIT ?"
        )
        rows = await self._all(sql, [*args, limit + 1])
        items = [dict(r) for r in rows[:limit]]
        nxt = (
            _encode_cursor(rows[limit - 1]["started_at"], rows[limit - 1]["id"])
            if len(rows) > limit
            else None
        )
        return items, nxt

    # -- transcription ---------------------------------------------------------

    async def requeue_transcriptions(self) -> int:
        """At start-up: jobs a stop or crash left running go back to the queue."""
        async with self.transaction() as db:
            cur = await db.execute(
                "UPDATE transcription_jobs SET state = 'pending', updated_at = ? "
                "WHERE state = 'running'",
                (now_iso(),),
            )
        return max(cur.rowcount, 0)

    async def enqueue_transcriptions(self) -> int:
        """Queue every finished recording to transcribe that has no job yet."""
        at = now_iso()
        async with self.transaction() as db:
            cur = await db.execute(
                "INSERT OR IGNORE INTO transcription_jobs "
                "(recording_id, state, attempts, created_at, updated_at) "
                "SELECT r.id, 'pending', 0, ?, ? FROM recordings r "
                "WHERE r.transcribe = 1 AND r.status IN ('complete', 'interrupted', 'truncated') "
                "AND NOT EXISTS (SELECT 1 FROM transcription_jobs j WHERE j.recording_id = r.id)",
                (at, at),
            )
        return max(cur.rowcount, 0)

    async def claim_transcription(self) -> dict[str, Any] | None:
        """Take the oldest pending job (now running, one more attempt) with its recording.

        The recording's fields (``path``, ``pauses``, ``number``, ...) are None
        when it was deleted.
        """
        # One worker call runs the UPDATE and reads its RETURNING row to the end:
        # through a cursor (execute, then fetch) the write statement stays open
        # between the two calls, and a commit in that gap fails with "cannot
        # commit transaction - SQL statements in progress".
        async with self.transaction() as db:
            rows = list(
                await db.execute_fetchall(
                    "UPDATE transcription_jobs SET state = 'running', attempts = attempts + 1, "
                    "updated_at = ? WHERE recording_id = (SELECT recording_id FROM "
                    "transcription_jobs WHERE state = 'pending' ORDER BY created_at, recording_id "
                    "LIMIT 1) RETURNING recording_id, attempts",
                    (now_iso(),),
                )
            )
        row = rows[0] if rows else None
        if row is None:
            return None
        rec = await self._one(
            "SELECT r.path, r.pauses, r.status, r.sample_rate, c.number FROM recordings r "
            "JOIN calls c ON c.id = r.call_id WHERE r.id = ?",
            (row["recording_id"],),
        )
        job: dict[str, Any] = {
            "recording_id": row["recording_id"],
            "attempts": row["attempts"],
            "path": None,
            "pauses": None,
            "status": None,
            "sample_rate": None,
            "number": None,
        }
        if rec is not None:
            job.update(dict(rec))
        return job

    async def finish_transcription(
        self, recording_id: str, state: str, error: str | None = None, *, refund: bool = False
    ) -> None:
        """Set a job's state: ``pending`` again, or final (``done``, ``failed``, ``dropped``)."""
        at = now_iso()
        await self._write(
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

    async def transcription_job(self, recording_id: str) -> dict[str, Any] | None:
        row = await self._one(
            "SELECT * FROM transcription_jobs WHERE recording_id = ?", (recording_id,)
        )
        return None if row is None else dict(row)

    async def save_transcript(
        self,
        recording_id: str,
        transcript: Mapping[str, Any],
        segments: Iterable[Mapping[str, Any]],
    ) -> bool:
        """Store a transcript and mark its job done; False if the recording is gone."""
        engine, model = transcript["engine"], transcript["model"]
        rows = [
            (
                recording_id,
                s["channel"],
                s["start_s"],
                s["end_s"],
                s["text"],
                s["confidence"],
                engine,
                model,
            )
            for s in segments
        ]
        at = now_iso()
        try:
            async with self.transaction() as db:
                await db.execute(
                    "DELETE FROM transcript_segments WHERE recording_id = ?", (recording_id,)
                )
                await db.executemany(
                    "INSERT INTO transcript_segments (recording_id, channel, start_s, end_s, "
                    "text, confidence, engine, model) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                await db.execute(
                    "INSERT OR REPLACE INTO transcripts (recording_id, engine, model, language, "
                    "audio_s, cpu_s, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        recording_id,
                        engine,
                        model,
                        transcript["language"],
                        transcript["audio_s"],
                        transcript["cpu_s"],
                        at,
                    ),
                )
                await db.execute(
                    "UPDATE transcription_jobs SET state = 'done', last_error = NULL, "
                    "updated_at = ?, finished_at = ? WHERE recording_id = ?",
                    (at, at, recording_id),
                )
        except aiosqlite.IntegrityError:  # the recording was deleted meanwhile
            return False
        return True

    async def transcript(self, recording_id: str) -> dict[str, Any] | None:
        """A recording's transcript with its segments in time order, or None."""
        head = await self._one("SELECT * FROM transcripts WHERE recording_id = ?", (recording_id,))
        if head is None:
            return None
        rows = await self._all(
            "SELECT channel, start_s, end_s, text, confidence, engine, model "
            "FROM transcript_segments WHERE recording_id = ? ORDER BY start_s, channel, id",
            (recording_id,),
        )
        return {**dict(head), "segments": [dict(r) for r in rows]}

    async def has_transcript(self, recording_id: str) -> bool:
        return (
            await self._one("SELECT 1 FROM transcripts WHERE recording_id = ?", (recording_id,))
            is not None
        )

    async def delete_transcript(self, recording_id: str) -> int:
        """Delete a recording's transcript and its job; 1 if there was a transcript."""
        async with self.transaction() as db:
            cur = await db.execute(
                "DELETE FROM transcripts WHERE recording_id = ?", (recording_id,)
            )
            await db.execute(
                "DELETE FROM transcript_segments WHERE recording_id = ?", (recording_id,)
            )
            await db.execute(
                "DELETE FROM transcription_jobs WHERE recording_id = ?", (recording_id,)
            )
        return max(cur.rowcount, 0)


def _number(row: aiosqlite.Row) -> dict[str, Any]:
    d = dict(row)
    d["recording"] = bool(d["recording"])
    d["transcription"] = bool(d["transcription"])
    return d


def _call(row: aiosqlite.Row) -> dict[str, Any]:
    d = dict(row)
    for key in ("recording_decision", "stats"):
        if d.get(key):
            d[key] = json.loads(d[key])
    return d
