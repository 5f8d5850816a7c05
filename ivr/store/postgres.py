"""The PostgreSQL backend: a pool of psycopg 3 connections, many writers, and its dialect.

Chosen with ``ivr serve --database postgresql://...`` (or ``IVR_DATABASE``).
Every unit of work is one PostgreSQL transaction on a connection of the
pool, so writers in this process and in other processes run side by side.
What SQLite gives by having one writer is made explicit here:

* the audit chain's appends take a transaction-scoped advisory lock
  (``pg_advisory_xact_lock``) before reading the tail, so two nodes never
  link two entries to the same tail;
* a transcription worker claims its job with ``FOR UPDATE SKIP LOCKED``, so
  each job goes to exactly one worker;
* an erasure holds its job's row (``FOR UPDATE``) while it runs, so a job two
  nodes resume at once runs once; a retention purge takes an advisory lock;
* migrations run in one transaction under an advisory lock of their own.

The repositories' SQL (``?`` marks) is translated once per statement
(:meth:`PostgresDialect.prepare`). The DSN's password is never logged: only
:func:`describe` of it is.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import psycopg
import psycopg.sql
import psycopg_pool
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import RowMaker

from ivr.errors import StorageUnavailable, StoreError
from ivr.store.base import Args, Database, Row, StorageHealth, Work, params
from ivr.store.dialect import Dialect
from ivr.store.pg_schema import MIGRATIONS

log = logging.getLogger("ivr.store")

POOL_MIN = 1
POOL_MAX = 10
"""Connections per process: enough for the API, the journal and the workers at once."""
CONNECT_TIMEOUT_S = 10.0
WAIT_S = 5.0
"""How long a unit of work waits for a free connection before the store counts as failing."""
APPLICATION_NAME = "ivr"
"""The connections' ``application_name``, as ``pg_stat_activity`` shows them."""
MIGRATION_LOCK = "migrations"


def describe(dsn: str) -> str:
    """The DSN without its password, for logs and errors: ``user@host:port/dbname``."""
    try:
        info = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "postgresql (unparsable DSN)"
    host = info.get("host") or "(default host)"
    port = f":{info['port']}" if info.get("port") else ""
    user = f"{info['user']}@" if info.get("user") else ""
    return f"postgresql://{user}{host}{port}/{info.get('dbname') or ''}"


def _reason(exc: Exception) -> str:
    """Why a connection failed, in libpq's words (which never hold the password)."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text or type(exc).__name__


def lock_key(name: str) -> int:
    """The advisory lock number of ``name`` (the same in every process)."""
    return zlib.crc32(f"ivr:{name}".encode())


@lru_cache(maxsize=512)
def _prepare(sql: str) -> str:
    out: list[str] = []
    quote = ""
    for ch in sql:
        if ch == "%":
            out.append("%%")  # psycopg reads % as its own mark, quoted or not
        elif quote:
            out.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        else:
            out.append(ch)
    return "".join(out)


class PostgresDialect(Dialect):
    """PostgreSQL's SQL differences (JSON is kept as text, timestamps as ISO 8601 text)."""

    name = "postgresql"
    storage_failures: tuple[type[Exception], ...] = (
        psycopg.OperationalError,  # disk full, I/O error, server gone, deadlock...
        psycopg_pool.PoolTimeout,
    )
    integrity_failures: tuple[type[Exception], ...] = (psycopg.IntegrityError,)
    skip_locked = " FOR UPDATE SKIP LOCKED"
    lock_row = " FOR UPDATE"

    def prepare(self, sql: str) -> str:
        """``?`` marks become ``%s`` (outside quotes), and every ``%`` is escaped."""
        return _prepare(sql)

    def json_field(self, column: str, key: str) -> str:
        return f"(({column})::jsonb ->> '{key}')"

    def json_with(self, column: str, key: str) -> str:
        return f"jsonb_set(({column})::jsonb, '{{{key}}}', to_jsonb(?::text))::text"

    def json_true(self, column: str, key: str) -> str:
        return f"COALESCE((({column})::jsonb -> '{key}') = 'true'::jsonb, false)"

    def seconds_between(self, start: str, end: str) -> str:
        return f"EXTRACT(EPOCH FROM (({end})::timestamptz - ({start})::timestamptz))::float8"

    def minutes_between(self, start: str, end: str) -> str:
        return f"({self.seconds_between(start, end)} / 60.0)"

    def count_if(self, condition: str) -> str:
        return f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)"


POSTGRESQL = PostgresDialect()


class PgRow:
    """A result row by column name or position, as ``aiosqlite.Row`` is."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        return self._values[key if isinstance(key, int) else self._index[key]]

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def keys(self) -> list[str]:
        return list(self._index)


def pg_row(cursor: Any) -> RowMaker[PgRow]:
    """psycopg's row factory for :class:`PgRow` (the first of two same-named columns wins)."""
    index: dict[str, int] = {}
    for i, column in enumerate(cursor.description or ()):
        index.setdefault(column.name, i)
    return lambda values: PgRow(values, index)


def _args(args: Args) -> Any:
    values = params(args)
    if isinstance(values, tuple):  # booleans are stored as integers, as on SQLite
        return tuple(int(v) if isinstance(v, bool) else v for v in values)
    return values


class PostgresWork:
    """A unit of work: one transaction on one connection of the pool."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn
        self.changed = 0

    async def execute(self, sql: str, args: Args = ()) -> int:
        cur = await self.conn.execute(_prepare(sql), _args(args))
        count = max(cur.rowcount, 0)
        if not (cur.statusmessage or "").startswith("SELECT"):  # a read changes nothing
            self.changed += count
        return count

    async def executemany(self, sql: str, rows: Iterable[Args]) -> None:
        batch = [_args(r) for r in rows]
        if batch:
            async with self.conn.cursor() as cur:
                await cur.executemany(_prepare(sql), batch)
            self.changed += len(batch)

    async def one(self, sql: str, args: Args = ()) -> Row | None:
        rows = await self.all(sql, args)
        return rows[0] if rows else None

    async def all(self, sql: str, args: Args = ()) -> list[Row]:
        cur = await self.conn.execute(_prepare(sql), _args(args))
        if not (cur.statusmessage or "").startswith("SELECT"):  # a write, maybe RETURNING
            self.changed += max(cur.rowcount, 0)
        return [] if cur.description is None else list(await cur.fetchall())

    async def lock(self, name: str) -> None:
        """Wait for the advisory lock ``name``; it is released when the transaction ends."""
        await self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(name),))


class PostgresDatabase(Database):
    """A PostgreSQL database (libpq DSN or ``postgresql://`` URL) through a connection pool."""

    dialect = POSTGRESQL
    migrations = MIGRATIONS

    def __init__(self, dsn: str, health: StorageHealth) -> None:
        super().__init__(health)
        self._dsn = dsn
        self.where = describe(dsn)
        self._pool: psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None

    @property
    def pool(self) -> psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        """The open pool; :class:`StoreError` before ``open`` or after ``close``."""
        if self._pool is None:
            raise StoreError("the store is not open")
        return self._pool

    async def open(self) -> None:
        # One connection first, so a wrong address or password fails at once, with
        # the error's kind and never the DSN (the pool would retry until its timeout).
        try:
            conn = await psycopg.AsyncConnection.connect(
                self._dsn, application_name=APPLICATION_NAME
            )
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to {self.where}: {_reason(exc)}") from None
        await conn.close()
        pool: psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Any]] = (
            psycopg_pool.AsyncConnectionPool(
                self._dsn,
                min_size=POOL_MIN,
                max_size=POOL_MAX,
                kwargs={
                    "autocommit": True,
                    "row_factory": pg_row,
                    "application_name": APPLICATION_NAME,
                },
                timeout=WAIT_S,
                open=False,
                name="ivr",
            )
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            await pool.close()
            raise StoreError(f"cannot connect to {self.where}: {_reason(exc)}") from None
        self._pool = pool
        try:
            await self._migrate()
        except BaseException:
            await self.close()
            raise
        log.info("store: %s, schema version %d", self.where, len(MIGRATIONS))

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def one(self, sql: str, args: Args = ()) -> Row | None:
        rows = await self.all(sql, args)
        return rows[0] if rows else None

    async def all(self, sql: str, args: Args = ()) -> list[Row]:
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(_prepare(sql), _args(args))
                return list(await cur.fetchall())
        except self.dialect.storage_failures as exc:
            # A read the server cannot serve (gone, restarting) is a 503 to the API,
            # as a write is; a broken connection is not given out again.
            raise StorageUnavailable(f"the database refused a read: {exc}") from exc

    async def notify(self, channel: str) -> None:
        try:
            async with self.pool.connection() as conn:
                await conn.execute("SELECT pg_notify(%s, '')", (channel,))
        except self.dialect.storage_failures as exc:
            raise StorageUnavailable(f"the database refused a notification: {exc}") from exc

    async def listen(self, channel: str) -> AsyncIterator[None]:
        # A connection of its own, outside the pool: it waits on LISTEN for as long
        # as the node runs. Yields once at the start (read the tables now), then
        # once a wake-up.
        try:
            conn = await psycopg.AsyncConnection.connect(
                self._dsn, autocommit=True, application_name=APPLICATION_NAME
            )
        except psycopg.Error as exc:
            raise StorageUnavailable(f"cannot listen on {self.where}: {_reason(exc)}") from None
        try:
            await conn.execute(f"LISTEN {psycopg.sql.Identifier(channel).as_string(conn)}")
            yield None
            async for _ in conn.notifies():
                yield None
        except self.dialect.storage_failures as exc:
            raise StorageUnavailable(f"the database stopped notifying: {exc}") from exc
        finally:
            await conn.close()

    async def stream(self, sql: str, args: Args = ()) -> AsyncIterator[Row]:
        try:
            async with (
                self.pool.connection() as conn,
                conn.transaction(),
                conn.cursor(name="ivr_stream") as cur,
            ):
                await cur.execute(_prepare(sql), _args(args))
                async for row in cur:
                    yield row
        except self.dialect.storage_failures as exc:
            raise StorageUnavailable(f"the database refused a read: {exc}") from exc

    @asynccontextmanager
    async def _unit(self) -> AsyncIterator[tuple[Work, Callable[[], bool]]]:
        async with self.pool.connection() as conn, conn.transaction():
            work = PostgresWork(conn)
            yield work, lambda: work.changed > 0

    async def compact(self) -> None:
        """Nothing to do: PostgreSQL's WAL is the server's (vacuum reclaims dead rows)."""

    async def schema_version(self) -> int:
        return int(await self.value("SELECT version FROM ivr_schema") or 0)

    async def _migrate(self) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(MIGRATION_LOCK),))
            await conn.execute("CREATE TABLE IF NOT EXISTS ivr_schema (version INTEGER NOT NULL)")
            cur = await conn.execute("SELECT version FROM ivr_schema")
            row = await cur.fetchone()
            if row is None:
                await conn.execute("INSERT INTO ivr_schema (version) VALUES (0)")
            version = 0 if row is None else int(row[0])
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"the database is at schema version {version}, newer than this program "
                    f"({len(MIGRATIONS)}); upgrade the program"
                )
            for i, step in enumerate(MIGRATIONS[version:], start=version + 1):
                await conn.execute(step.encode())  # no parameters: several statements
                await conn.execute("UPDATE ivr_schema SET version = %s", (i,))
                log.info("store: migrated %s to schema version %d", self.where, i)
