"""The shared connection, its write lock and the storage health: what every repository uses.

One aiosqlite connection serialises every statement on its own thread, so
the event loop never waits on the disk. :class:`Database` holds it for the
:class:`ivr.store.Store`, which opens it; each repository is a small class
over it (:class:`Repository`). Every write is one unit of work
(:meth:`Database.transaction`): under one lock, committed whole or rolled
back whole, and a write the disk refuses is a
:class:`ivr.errors.StorageUnavailable` that may be tried again. That is what
lets the call path keep what a full disk refused and save it later.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite

from ivr.errors import StorageUnavailable, StoreError
from ivr.store import dialect

log = logging.getLogger("ivr.store")

Args = Iterable[Any] | Mapping[str, Any]


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
        """A write failed for want of a working disk."""
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
        """A write that changed something was committed."""
        if self.failing:
            self.failing = False
            log.warning("storage: writes succeed again (they failed with: %s)", self.reason)
            for listener in self.listeners:
                listener(False)


def _params(args: Args) -> tuple[Any, ...] | Mapping[str, Any]:
    return args if isinstance(args, Mapping) else tuple(args)


class Database:
    """The one connection every repository shares, and the lock its writers take."""

    def __init__(self, health: StorageHealth) -> None:
        self.health = health
        self._conn: aiosqlite.Connection | None = None
        # One unit of work at a time on the shared connection (see transaction()).
        self._write_lock = asyncio.Lock()

    @property
    def conn(self) -> aiosqlite.Connection:
        """The open connection; :class:`StoreError` before ``open`` or after ``close``."""
        if self._conn is None:
            raise StoreError("the store is not open")
        return self._conn

    def attach(self, conn: aiosqlite.Connection) -> None:
        """Use ``conn`` from now on."""
        self._conn = conn

    async def close(self) -> None:
        """Close the connection; every use afterwards is a :class:`StoreError`."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def one(self, sql: str, args: Args = ()) -> aiosqlite.Row | None:
        """The first row of a read, or None."""
        async with self.conn.execute(sql, _params(args)) as cur:
            return await cur.fetchone()

    async def all(self, sql: str, args: Args = ()) -> list[aiosqlite.Row]:
        """Every row of a read."""
        async with self.conn.execute(sql, _params(args)) as cur:
            return list(await cur.fetchall())

    async def value(self, sql: str, args: Args = ()) -> Any:
        """The first column of the first row of a read (None if there is no row)."""
        row = await self.one(sql, args)
        return None if row is None else row[0]

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One unit of work: committed whole at the end, or rolled back whole on an error.

        Every writer shares one connection, so without this lock one
        coroutine's commit would also commit another's half-done statements,
        and a rollback after a failed commit (a full disk) would silently drop
        them. Reads need no lock.
        """
        async with self._write_lock:
            db = self.conn
            changes = db.total_changes
            try:
                yield db
                await db.commit()
            except dialect.StorageFailure as exc:
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

    async def write(self, sql: str, args: Args = ()) -> int:
        """One statement as its own unit of work; the number of rows it changed."""
        async with self.transaction() as db:
            cur = await db.execute(sql, _params(args))
        return max(cur.rowcount, 0)


class Repository:
    """One aggregate's tables over the shared :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self._db = db


def encode_cursor(started_at: str, row_id: str) -> str:
    """A page cursor: the sort key of the last row of the page."""
    return base64.urlsafe_b64encode(f"{started_at}|{row_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[str, str]:
    """Parse a page cursor; :class:`StoreError` for anything not made by us."""
    try:
        started_at, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StoreError("bad cursor") from exc
    return started_at, row_id
