"""The ``ivr`` commands that open the store, on PostgreSQL (``--database`` or ``IVR_DATABASE``).

Real processes against the test server (:mod:`tests.postgres`; skipped
without ``IVR_TEST_POSTGRES``, failed in CI).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from itertools import pairwise
from pathlib import Path

import pytest

from ivr.store import Store
from tests.ivr.test_cli import IVR, run
from tests.postgres import fresh_database


@pytest.fixture
async def dsn() -> AsyncIterator[str]:
    async with fresh_database() as url:
        yield url


def run_env(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    import subprocess

    done = subprocess.run(
        [*IVR, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **env}
    )
    return done.returncode, done.stdout, done.stderr


async def test_every_store_command_takes_database_and_the_environment_variable(
    tmp_path: Path, dsn: str
) -> None:
    data = tmp_path / "data"
    add = run(
        *("users", "add", "--email", "ana@example.com", "--name", "Ana", "--role", "agent"),
        *("--data", str(data), "--database", dsn),
    )
    assert add.returncode == 0, add.stderr
    again = run(
        *("users", "add", "--email", "ANA@example.com", "--name", "A", "--role", "agent"),
        *("--data", str(data), "--database", dsn),
    )
    assert (again.returncode, "already exists" in again.stderr) == (1, True)  # in any case
    env = {"IVR_DATABASE": dsn}
    code, out, err = run_env("audit", "verify", "--data", str(data), env=env)
    assert (code, "audit log ok" in out) == (0, True), err
    code, out, err = run_env("purge", "--data", str(data), env=env)
    assert code == 0, err
    assert json.loads(out)["recordings"] == 0
    code, out, err = run_env(
        "export", "--contact", "+15557654321", "--out", str(tmp_path / "x.zip"),
        "--data", str(data), env=env,
    )  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "x.zip").is_file()
    code, out, err = run_env("erase", "--agent", "ana@example.com", "--data", str(data), env=env)
    assert code == 0, err
    assert json.loads(out)["subject"]["kind"] == "agent"
    assert not (data / "ivr.sqlite3").exists()  # all of it went to PostgreSQL


def test_serve_refuses_a_database_it_cannot_reach_without_showing_the_password(
    tmp_path: Path,
) -> None:
    url = "postgresql://ivr:s3cret-pw@127.0.0.1:1/ivr"
    served = run("serve", "--data", str(tmp_path / "d"), "--port", "0", "--database", url)
    assert served.returncode == 1
    assert "cannot connect to postgresql://ivr@127.0.0.1:1/ivr" in served.stderr
    assert "s3cret" not in served.stderr + served.stdout


APPENDER = """
import asyncio, sys
from pathlib import Path
from ivr.access.audit import AuditLog
from ivr.store import Store

async def main() -> None:
    store = Store(Path(sys.argv[1]), sys.argv[2])
    await store.open()
    log = AuditLog(store)
    sys.stdout.write("ready\\n")
    sys.stdout.flush()
    sys.stdin.readline()  # both start appending at once
    for i in range(int(sys.argv[3])):
        await log.record(None, "test.append", "ok", object_id=f"{sys.argv[4]}-{i}")
    await log.close()
    await store.close()

asyncio.run(main())
"""


async def test_two_processes_appending_at_once_leave_a_chain_audit_verify_accepts(
    tmp_path: Path, dsn: str
) -> None:
    import asyncio
    import sys

    data = tmp_path / "data"
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", APPENDER, str(data), dsn, "150", name,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        for name in ("a", "b")
    ]  # fmt: skip
    for proc in procs:
        assert proc.stdout is not None
        assert await asyncio.wait_for(proc.stdout.readline(), 60) == b"ready\n"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    assert [await asyncio.wait_for(p.wait(), 120) for p in procs] == [0, 0]
    verified = run("audit", "verify", "--data", str(data), "--database", dsn)
    assert verified.returncode == 0, verified.stderr
    assert "audit log ok: 300 entries" in verified.stdout
    store = Store(data, dsn)
    await store.open()
    entries = await store.audit.entries(limit=300)
    await store.close()
    writers = [e.object_id[0] for e in entries if e.object_id]
    switches = sum(1 for x, y in pairwise(writers) if x != y)
    assert switches > 1  # they did write at once, not one after the other
