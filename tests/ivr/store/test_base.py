"""The store's foundations on real databases: units of work, health, the dialect, migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ivr.errors import StorageUnavailable, StoreError
from ivr.store import MIGRATIONS, Store, decode_cursor, dialect
from ivr.store.base import encode_cursor
from ivr.store.postgres import POSTGRESQL, describe
from tests.ivr.store.conftest import storage_failure
from tests.postgres import fresh_database


async def half_a_unit(store: Store, error: Exception) -> None:
    """Write a team in a unit of work, then fail with ``error`` before it ends."""
    async with store.transaction() as db:
        await db.execute(
            dialect.insert("teams", ("id", "bots", "bot_greeting", "source")),
            ("half", 1, None, "api"),
        )
        await db.execute("UPDATE teams SET bots = 2")
        raise error


async def test_a_unit_of_work_that_fails_is_rolled_back_whole(store: Store) -> None:
    await store.catalog.save_team("kept", 5, None)
    with pytest.raises(RuntimeError, match="half way"):
        await half_a_unit(store, RuntimeError("half way"))
    assert [(t.id, t.bots) for t in await store.catalog.teams()] == [("kept", 5)]
    assert not store.health.failing  # a bug is not a disk failure


async def test_a_write_the_disk_refuses_is_storage_unavailable_and_marks_health(
    store: Store,
) -> None:
    heard: list[bool] = []
    store.health.listeners.append(heard.append)
    with pytest.raises(StorageUnavailable, match="disk is full"):
        await half_a_unit(store, storage_failure(store, "database or disk is full"))
    assert store.health.failing
    assert "disk is full" in store.health.reason
    assert await store.catalog.teams() == []  # nothing of the unit was kept
    # The next write that changes something shows the disk is back.
    await store.catalog.save_team("kept", 2, None)
    assert not store.health.failing
    assert heard == [True, False]
    assert [t.id for t in await store.catalog.teams()] == ["kept"]


async def test_a_closed_store_refuses_every_call(tmp_path: Path, database: str | None) -> None:
    store = Store(tmp_path / "data", database)
    with pytest.raises(StoreError, match="not open"):
        await store.users.all()
    await store.open()
    assert await store.schema_version() == store.migrations
    await store.close()
    with pytest.raises(StoreError, match="not open"):
        await store.users.all()


async def test_reopening_a_migrated_database_changes_nothing(
    tmp_path: Path, database: str | None
) -> None:
    store = Store(tmp_path / "data", database)
    await store.open()
    await store.catalog.save_team("support", 3, None)
    await store.close()
    await store.open()
    assert await store.schema_version() == store.migrations
    assert [(t.id, t.bots) for t in await store.catalog.teams()] == [("support", 3)]
    await store.close()


async def test_a_sqlite_database_newer_than_the_program_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    db = sqlite3.connect(tmp_path / "data" / "ivr.sqlite3")
    db.execute(dialect.set_schema_version(len(MIGRATIONS) + 1))
    db.close()
    store = Store(tmp_path / "data")
    with pytest.raises(StoreError, match="upgrade the program"):
        await store.open()
    # Closed by the failed open: its connection's thread would keep the process
    # (ivr serve, reporting the error) from exiting.
    with pytest.raises(StoreError, match="not open"):
        store.db  # noqa: B018
    await store.close()


def test_cursors_round_trip_and_junk_is_refused() -> None:
    cursor = encode_cursor("2026-01-01T00:00:00.000Z", "c_1")
    assert decode_cursor(cursor) == ("2026-01-01T00:00:00.000Z", "c_1")
    with pytest.raises(StoreError, match="bad cursor"):
        decode_cursor("not a cursor!")


# -- the dialect: each function's SQL, run on SQLite ---------------------------------------


def test_the_dialect_builds_the_statements_it_names() -> None:
    assert dialect.marks(3) == "?, ?, ?"
    assert dialect.in_list([]) == "(NULL)"
    assert dialect.in_list(["a", "b"]) == "(?, ?)"
    assert dialect.insert("t", ("a", "b")) == "INSERT INTO t (a, b) VALUES (?, ?)"
    assert dialect.upsert("t", ("id", "a"), ("id",)) == (
        "INSERT INTO t (id, a) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET a = excluded.a"
    )
    assert dialect.insert_absent("t", ("id",), ("id",)).endswith("ON CONFLICT (id) DO NOTHING")
    assert dialect.returning("a", "b") == " RETURNING a, b"
    assert dialect.set_schema_version(7) == "PRAGMA user_version = 7"


async def test_the_dialect_runs_on_sqlite(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "d.sqlite3")
    db.execute("CREATE TABLE t (id TEXT PRIMARY KEY, a INTEGER, data TEXT, s TEXT, e TEXT)")
    cols = ("id", "a", "data", "s", "e")
    row = ("x", 1, '{"agent": "Ana"}', "2026-01-01T00:00:00.000Z", "2026-01-01T00:01:30.000Z")
    db.execute(dialect.insert("t", cols), row)
    db.execute(dialect.insert_absent("t", cols, ("id",)), ("x", 9, "{}", "", ""))
    assert db.execute("SELECT a FROM t").fetchall() == [(1,)]  # present: nothing happened
    db.execute(dialect.upsert("t", ("id", "a"), ("id",)), ("x", 2))
    assert db.execute("SELECT a FROM t").fetchall() == [(2,)]
    assert db.execute(f"SELECT id FROM t WHERE id IN {dialect.in_list([])}").fetchall() == []
    db.execute(f"UPDATE t SET data = {dialect.json_with('data', 'agent')}", ("ps_1",))
    got = db.execute(f"SELECT {dialect.json_field('data', 'agent')} FROM t").fetchone()
    assert got == ("ps_1",)
    seconds = db.execute(f"SELECT {dialect.seconds_between('s', 'e')} FROM t").fetchone()[0]
    minutes = db.execute(f"SELECT {dialect.minutes_between('s', 'e')} FROM t").fetchone()[0]
    assert (round(seconds, 3), round(minutes, 3)) == (90.0, 1.5)
    counted = db.execute(f"SELECT {dialect.count_if('a = 2')}, {dialect.count_if('a = 3')} FROM t")
    assert counted.fetchone() == (1, 0)
    returned = db.execute(
        "UPDATE t SET a = a + 1 WHERE id = 'x'" + dialect.returning("id", "a")
    ).fetchall()
    assert returned == [("x", 3)]
    db.close()


# -- the two backends' schemas --------------------------------------------------------------


async def test_postgresql_migrations_make_the_tables_and_columns_sqlite_has(
    tmp_path: Path,
) -> None:
    """A SQLite migration without its PostgreSQL counterpart (or the reverse) fails here."""
    sqlite = Store(tmp_path / "sqlite")
    await sqlite.open()
    tables = await sqlite.db.execute_fetchall(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    )
    want = {}
    for (table,) in tables:
        columns = await sqlite.db.execute_fetchall(f"PRAGMA table_info({table})")
        want[table] = sorted(c[1] for c in columns)
    await sqlite.close()
    async with fresh_database() as dsn:
        pg = Store(tmp_path / "pg", dsn)
        await pg.open()
        try:
            async with pg.transaction() as db:
                rows = await db.all(
                    "SELECT table_name, column_name FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name != 'ivr_schema'"
                )
        finally:
            await pg.close()
    got: dict[str, list[str]] = {}
    for row in rows:
        got.setdefault(row[0], []).append(row[1])
    assert {t: sorted(c) for t, c in got.items()} == want


async def test_a_postgresql_database_newer_than_the_program_is_refused(tmp_path: Path) -> None:
    async with fresh_database() as dsn:
        store = Store(tmp_path / "data", dsn)
        await store.open()
        async with store.transaction() as db:
            await db.execute("UPDATE ivr_schema SET version = version + 1")
        await store.close()
        with pytest.raises(StoreError, match="upgrade the program"):
            await store.open()


async def test_a_postgresql_dsn_is_never_shown_with_its_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dsn = "postgresql://ivr:s3cret-pw@127.0.0.1:1/ivr?connect_timeout=1"
    assert describe(dsn) == "postgresql://ivr@127.0.0.1:1/ivr"
    assert "s3cret" not in describe("host=db user=ivr password=s3cret-pw dbname=ivr")
    store = Store(tmp_path / "data", dsn)
    with caplog.at_level("DEBUG"), pytest.raises(StoreError) as refused:
        await store.open()
    assert "cannot connect to postgresql://ivr@127.0.0.1:1/ivr" in str(refused.value)
    assert "s3cret" not in str(refused.value)
    assert "s3cret" not in caplog.text


def test_a_database_that_is_not_postgresql_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="postgresql://"):
        Store(tmp_path, "mysql://db/ivr")


async def test_a_lost_postgresql_connection_is_storage_unavailable_until_a_write_succeeds(
    tmp_path: Path,
) -> None:
    import psycopg

    async with fresh_database() as dsn:
        store = Store(tmp_path / "data", dsn)
        await store.open()
        try:
            await store.catalog.save_team("kept", 1, None)
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as admin:
                await admin.execute(  # the server ends every connection of the store
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = 'ivr'"
                )
            with pytest.raises(StorageUnavailable):
                await store.catalog.save_team("lost", 2, None)
            assert store.health.failing
            for _ in range(20):  # the pool drops each broken connection it gave out
                try:
                    await store.catalog.save_team("later", 3, None)
                    break
                except StorageUnavailable:
                    continue
            assert not store.health.failing
            assert [t.id for t in await store.catalog.teams()] == ["kept", "later"]
        finally:
            await store.close()


def test_postgresql_marks_are_translated_outside_quotes_and_percent_signs_escaped() -> None:
    sql = "SELECT '?', \"a?\", ? FROM t WHERE b LIKE '%x' AND c = ?"
    assert POSTGRESQL.prepare(sql) == (
        "SELECT '?', \"a?\", %s FROM t WHERE b LIKE '%%x' AND c = %s"
    )


async def test_the_dialect_runs_on_postgresql(tmp_path: Path) -> None:
    sql = POSTGRESQL
    async with fresh_database() as dsn:
        store = Store(tmp_path / "data", dsn)
        await store.open()
        try:
            async with store.transaction() as db:
                await db.execute(
                    "CREATE TABLE t (id TEXT PRIMARY KEY, a INTEGER, data TEXT, s TEXT, e TEXT)"
                )
                cols = ("id", "a", "data", "s", "e")
                row = (
                    "x",
                    1,
                    '{"agent": "Ana", "record": true}',
                    "2026-01-01T00:00:00.000Z",
                    "2026-01-01T00:01:30.000Z",
                )
                await db.execute(dialect.insert("t", cols), row)
                await db.execute(dialect.insert_absent("t", cols, ("id",)), ("x", 9, "{}", "", ""))
                assert (await db.one("SELECT a FROM t"))[0] == 1  # type: ignore[index]
                await db.execute(dialect.upsert("t", ("id", "a"), ("id",)), ("x", 2))
                assert (await db.one("SELECT a FROM t"))[0] == 2  # type: ignore[index]
                assert await db.all(f"SELECT id FROM t WHERE id IN {dialect.in_list([])}") == []
                await db.execute(f"UPDATE t SET data = {sql.json_with('data', 'agent')}", ("ps_1",))
                got = await db.one(
                    f"SELECT {sql.json_field('data', 'agent')}, "
                    f"{sql.seconds_between('s', 'e')}, {sql.minutes_between('s', 'e')} FROM t"
                )
                assert got is not None
                assert (got[0], got[1], got[2]) == ("ps_1", 90.0, 1.5)
                counted = await db.one(
                    f"SELECT {sql.count_if(sql.json_true('data', 'record'))}, "
                    f"{sql.count_if(sql.json_true('data', 'absent'))}, "
                    f"{sql.count_if('a = 2')}, {sql.count_if('a = 3')} FROM t"
                )
                assert counted is not None
                assert [counted[i] for i in range(4)] == [1, 0, 1, 0]
                returned = await db.all(
                    "UPDATE t SET a = a + 1 WHERE id = 'x'" + dialect.returning("id", "a")
                )
                assert [tuple(r) for r in returned] == [("x", 3)]  # type: ignore[arg-type]
        finally:
            await store.close()
