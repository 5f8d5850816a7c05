"""The database interface every repository uses, its units of work, and the storage health.

:class:`Database` is one backend's connection(s): SQLite's
(:mod:`ivr.store.sqlite`, one aiosqlite connection and a write lock) or
PostgreSQL's (:mod:`ivr.store.postgres`, a pool of psycopg connections and
many writers). :class:`ivr.store.Store` opens one; each repository is a
small class over it (:class:`Repository`). Every write is one unit of work
(:meth:`Database.transaction`): committed whole or rolled back whole, and a
write the database refuses is a :class:`ivr.errors.StorageUnavailable` that
may be tried again. That is what lets the call path keep what a full disk
refused and save it later. Statements use ``?`` marks; a backend whose
driver wants others translates them (its dialect's ``prepare``).
"""

from __future__ import annotations

import base64
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

from ivr.errors import StorageUnavailable, StoreError
from ivr.store.dialect import Dialect

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


def params(args: Args) -> tuple[Any, ...] | Mapping[str, Any]:
    """Statement arguments as the drivers take them."""
    return args if isinstance(args, Mapping) else tuple(args)


class Row(Protocol):
    """A result row: by column name or position (``aiosqlite.Row``, and PostgreSQL's)."""

    def __getitem__(self, key: int | str) -> Any: ...

    def keys(self) -> Iterable[str]: ...


class Work(Protocol):
    """The open unit of work of :meth:`Database.transaction`: its statements, reads and locks."""

    async def execute(self, sql: str, args: Args = ()) -> int:
        """Run one statement; the number of rows it changed."""

    async def executemany(self, sql: str, rows: Iterable[Args]) -> None:
        """Run one statement once per row of arguments."""

    async def one(self, sql: str, args: Args = ()) -> Row | None:
        """The first row of a read (or of a write's RETURNING), or None."""

    async def all(self, sql: str, args: Args = ()) -> list[Row]:
        """Every row of a read (or of a write's RETURNING)."""

    async def lock(self, name: str) -> None:
        """Hold the lock ``name`` until the unit ends, against every other writer.

        SQLite has one writer already (the write lock); PostgreSQL takes a
        transaction-scoped advisory lock, so writers in other processes wait.
        """


class Database(ABC):
    """The store's connection(s), one backend's: reads, units of work, migrations.

    :class:`ivr.store.sqlite.SqliteDatabase` (one connection, a write lock)
    and :class:`ivr.store.postgres.PostgresDatabase` (a pool, many writers)
    implement it; the repositories see only this interface and ``dialect``.
    """

    dialect: Dialect
    migrations: Sequence[object]
    """The backend's numbered migrations (its schema version counts those applied)."""

    def __init__(self, health: StorageHealth) -> None:
        self.health = health

    @abstractmethod
    async def open(self) -> None:
        """Connect, and bring the schema up to date."""

    @abstractmethod
    async def close(self) -> None:
        """Close; every use afterwards is a :class:`StoreError`."""

    @abstractmethod
    async def schema_version(self) -> int:
        """How many migrations the database has had."""

    @abstractmethod
    async def one(self, sql: str, args: Args = ()) -> Row | None:
        """The first row of a read, or None."""

    @abstractmethod
    async def all(self, sql: str, args: Args = ()) -> list[Row]:
        """Every row of a read."""

    @abstractmethod
    def stream(self, sql: str, args: Args = ()) -> AsyncIterator[Row]:
        """The rows of a long read, fetched as they are consumed."""

    @abstractmethod
    def _unit(self) -> AbstractAsyncContextManager[tuple[Work, Callable[[], bool]]]:
        """One backend transaction: its work, and whether it changed anything so far."""

    @abstractmethod
    async def compact(self) -> None:
        """After an erasure: leave no erased value in the database's logs (if it can)."""

    async def notify(self, channel: str) -> None:
        """Wake whoever listens on ``channel`` in other processes (PostgreSQL's NOTIFY).

        A wake-up only: the tables hold the truth, and a listener re-reads them.
        One SQLite store has one node, so there is nobody to wake.
        """
        return None

    def listen(self, channel: str) -> AsyncIterator[None] | None:
        """Each wake-up on ``channel`` (PostgreSQL's LISTEN), until the connection fails
        (:class:`ivr.errors.StorageUnavailable`); None where there are none (SQLite)."""
        return None

    async def value(self, sql: str, args: Args = ()) -> Any:
        """The first column of the first row of a read (None if there is no row)."""
        row = await self.one(sql, args)
        return None if row is None else row[0]

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Work]:
        """One unit of work: committed whole at the end, or rolled back whole on an error.

        A write the database refuses for want of a working disk (or, on
        PostgreSQL, a server) is :class:`ivr.errors.StorageUnavailable`, and
        marks the health failing until a write that changes something
        succeeds again.
        """
        try:
            async with self._unit() as (work, changed):
                yield work
        except self.dialect.storage_failures as exc:
            self.health.failed(str(exc))
            raise StorageUnavailable(f"the database refused a write: {exc}") from exc
        # Only a commit that wrote something shows the disk takes writes again
        # (one that changed nothing succeeds even on a full disk).
        if changed():
            self.health.succeeded()

    async def write(self, sql: str, args: Args = ()) -> int:
        """One statement as its own unit of work; the number of rows it changed."""
        async with self.transaction() as db:
            return await db.execute(sql, args)


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
