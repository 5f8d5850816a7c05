"""A real PostgreSQL for the tests: the DSN from ``IVR_TEST_POSTGRES``, a fresh schema per test.

Run them locally under a throwaway cluster::

    pg_virtualenv -t sh -c 'IVR_TEST_POSTGRES=postgresql:// .venv/bin/pytest tests/ivr/store'

(``pg_virtualenv`` exports the PG* variables that the empty URL uses). Without
the variable the PostgreSQL tests are skipped, except in CI (``CI`` set),
where they fail: CI never skips them silently.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote

import pytest

ENV = "IVR_TEST_POSTGRES"
BACKENDS = ["sqlite", "postgresql"]


def postgres_dsn() -> str:
    """The test server's DSN; skips the test when it is unset (fails it in CI)."""
    dsn = os.environ.get(ENV, "")
    if dsn:
        return dsn
    if os.environ.get("CI"):
        pytest.fail(f"{ENV} is not set, and CI is: the PostgreSQL tests must run in CI")
    pytest.skip(f"PostgreSQL tests need {ENV}=postgresql://... (e.g. under pg_virtualenv)")


def with_search_path(dsn: str, schema: str) -> str:
    """``dsn`` (a ``postgresql://`` URL) whose sessions use ``schema``."""
    joiner = "&" if "?" in dsn else "?"
    return f"{dsn}{joiner}options={quote(f'-csearch_path={schema}')}"


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """The DSN of an empty schema of its own, dropped afterwards (a database per test)."""
    import psycopg

    dsn = postgres_dsn()
    schema = f"t_{secrets.token_hex(6)}"
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield with_search_path(dsn, schema)
    finally:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")


@asynccontextmanager
async def database_for(backend: str) -> AsyncIterator[str | None]:
    """What ``Store(data, database)`` takes for ``backend``: None for SQLite."""
    if backend == "sqlite":
        yield None
        return
    async with fresh_database() as dsn:
        yield dsn
