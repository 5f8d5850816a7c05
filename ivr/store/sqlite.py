"""The SQLite backend: one aiosqlite connection (WAL) and the write lock its writers take.

One aiosqlite connection serialises every statement on its own thread, so
the event loop never waits on the disk. Every writer shares it, so a unit of
work holds one lock from its first statement to its commit: without it, one
coroutine's commit would also commit another's half-done statements, and a
rollback after a failed commit (a full disk) would silently drop them. Reads
need no lock. Being the only writer, it serialises what PostgreSQL needs
locks for (the audit chain's appends, claiming jobs).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Generator, Iterable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite

from ivr.errors import StoreError
from ivr.store import dialect
from ivr.store.base import Args, Database, Row, StorageHealth, Work, params
from ivr.store.schema import MIGRATIONS


class InlineConnection(aiosqlite.Connection):
    """aiosqlite's connection with every statement run at once, on the caller's thread.

    For the simulator (:mod:`ivr.simulate`), whose event loop keeps virtual
    time: a statement on aiosqlite's thread would finish at a real moment
    the virtual clock knows nothing of, so the order of a simulated run
    would depend on the machine. Run inline, the same SQL on the same
    SQLite file finishes before the loop moves on. Only ``_execute`` and the
    connecting differ from aiosqlite's (0.20 to 0.22 route every statement,
    cursors' included, through ``_execute``); the worker thread never starts.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(partial(sqlite3.connect, str(path)), 64)
        self.refuse_writes: Callable[[], bool] | None = None
        """While this says so, every commit fails as a failing disk's would (a simulated fault)."""

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        refuse = self.refuse_writes
        if refuse is not None and refuse() and fn == self._connection.commit:
            raise sqlite3.OperationalError("disk I/O error (a simulated store outage)")
        return fn(*args, **kwargs)

    async def _open(self) -> InlineConnection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    def __await__(self) -> Generator[Any, None, InlineConnection]:
        return self._open().__await__()

    def stop(self) -> None:
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class SqliteWork:
    """A unit of work on the shared connection (see :class:`ivr.store.base.Work`)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    async def execute(self, sql: str, args: Args = ()) -> int:
        cur = await self.conn.execute(sql, params(args))
        return max(cur.rowcount, 0)

    async def executemany(self, sql: str, rows: Iterable[Args]) -> None:
        await self.conn.executemany(sql, [params(r) for r in rows])

    async def one(self, sql: str, args: Args = ()) -> Row | None:
        rows = await self.all(sql, args)
        return rows[0] if rows else None

    async def all(self, sql: str, args: Args = ()) -> list[Row]:
        # One call reads a write's RETURNING rows to the end: through a cursor
        # (execute, then fetch) the statement would stay open between the two,
        # and a commit in that gap fails with "SQL statements in progress".
        return list(await self.conn.execute_fetchall(sql, params(args)))

    async def lock(self, name: str) -> None:
        """Nothing to take: the write lock is already held for the whole unit."""


class SqliteDatabase(Database):
    """``<data>/ivr.sqlite3``: one connection, one writer at a time."""

    dialect = dialect.SQLITE
    migrations = MIGRATIONS

    def __init__(self, path: Path, health: StorageHealth, *, inline: bool = False) -> None:
        super().__init__(health)
        self.path = path
        self.inline = inline
        """Statements run on the event loop's thread (:class:`InlineConnection`)."""
        self._conn: aiosqlite.Connection | None = None
        # One unit of work at a time on the shared connection (see the module's doc).
        self._write_lock = asyncio.Lock()

    @property
    def conn(self) -> aiosqlite.Connection:
        """The open connection; :class:`StoreError` before ``open`` or after ``close``."""
        if self._conn is None:
            raise StoreError("the store is not open")
        return self._conn

    async def open(self) -> None:
        conn = await (InlineConnection(self.path) if self.inline else aiosqlite.connect(self.path))
        conn.row_factory = aiosqlite.Row
        self._conn = conn
        try:
            for pragma in dialect.CONNECT:
                await conn.execute(pragma)
            await self._migrate()
        except BaseException:
            # Closed, or its thread keeps the process from exiting after the error.
            await self.close()
            raise

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def one(self, sql: str, args: Args = ()) -> Row | None:
        async with self.conn.execute(sql, params(args)) as cur:
            row: Row | None = await cur.fetchone()
            return row

    async def all(self, sql: str, args: Args = ()) -> list[Row]:
        async with self.conn.execute(sql, params(args)) as cur:
            return list(await cur.fetchall())

    async def stream(self, sql: str, args: Args = ()) -> AsyncIterator[Row]:
        async with self.conn.execute(sql, params(args)) as cur:
            async for row in cur:
                yield row

    @asynccontextmanager
    async def _unit(self) -> AsyncIterator[tuple[Work, Callable[[], bool]]]:
        async with self._write_lock:
            db = self.conn
            changes = db.total_changes
            try:
                yield SqliteWork(db), lambda: db.total_changes != changes
                await db.commit()
            except BaseException:
                with contextlib.suppress(Exception):
                    await db.rollback()
                raise

    async def compact(self) -> None:
        """Fold the write-ahead log into the database and empty it."""
        await self.conn.execute(dialect.CHECKPOINT)

    async def schema_version(self) -> int:
        return int(await self.value(dialect.SCHEMA_VERSION) or 0)

    async def _migrate(self) -> None:
        version = await self.schema_version()
        if version > len(MIGRATIONS):
            raise StoreError(
                f"the database is at schema version {version}, newer than this program "
                f"({len(MIGRATIONS)}); upgrade the program"
            )
        if version == len(MIGRATIONS):
            return
        db = self.conn
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
            broken = await self.all(dialect.FOREIGN_KEY_CHECK)
            if broken:
                raise StoreError(f"the migrated database has {len(broken)} broken reference(s)")
        finally:
            await db.execute(dialect.FOREIGN_KEYS_ON)
