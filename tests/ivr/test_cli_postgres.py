"""The ``ivr`` commands that open the store, on PostgreSQL (``--database`` or ``IVR_DATABASE``).

Real processes against the test server (:mod:`tests.postgres`; skipped
without ``IVR_TEST_POSTGRES``, failed in CI).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

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
