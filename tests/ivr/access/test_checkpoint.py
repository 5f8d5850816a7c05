"""Signed checkpoints of the audit chain's head: a cut or rewritten tail is caught and named."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ivr.access.audit import AuditLog, verify, verify_checkpoints
from ivr.access.checkpoint import (
    CHECKPOINT_FILE,
    KEY_FILE,
    Checkpointer,
    load_key,
    read_checkpoints,
)
from ivr.cli import main
from ivr.store import Store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = Store(tmp_path / "data")
    await s.open()
    yield s
    await s.close()


async def entries(log: AuditLog, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        await log.record(None, "test.action", "ok", object_type="thing", object_id=f"t{i}")


def checkpointer(store: Store) -> Checkpointer:
    data = store.data_dir
    return Checkpointer(store, data / KEY_FILE, data / CHECKPOINT_FILE, node="n1", every_s=3600)


async def check(store: Store) -> Any:
    public = load_key(store.data_dir / KEY_FILE).public_key()
    lines = list(read_checkpoints(store.data_dir / CHECKPOINT_FILE, public))
    return await verify_checkpoints(store, lines)


async def cut_tail(store: Store, keep: int) -> None:
    """What someone with write access to the database can do: drop the guard, delete rows."""
    db = store.db
    await db.execute("DROP TRIGGER audit_append_only_delete")
    await db.execute("DELETE FROM audit WHERE seq > ?", (keep,))
    await db.commit()


async def test_an_untouched_log_matches_its_checkpoint_and_newer_entries_are_named(
    store: Store,
) -> None:
    log = AuditLog(store)
    await entries(log, 5)
    cp = await checkpointer(store).checkpoint()
    assert cp is not None
    assert cp.seq == 5
    verdict = await check(store)
    assert verdict.ok
    assert "entry 5, and it is there unchanged" in verdict.message
    await entries(log, 2, 5)
    verdict = await check(store)
    assert verdict.ok
    assert "entries 6..7 are newer (not vouched for yet)" in verdict.message
    data = store.data_dir
    assert stat.S_IMODE((data / KEY_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE((data / CHECKPOINT_FILE).stat().st_mode) == 0o600


async def test_a_head_that_did_not_move_is_not_signed_again(store: Store) -> None:
    log = AuditLog(store)
    await entries(log, 3)
    c = checkpointer(store)
    assert await c.checkpoint() is not None
    assert await c.checkpoint() is None
    await entries(log, 1, 3)
    assert await c.checkpoint() is not None
    lines = (store.data_dir / CHECKPOINT_FILE).read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [3, 4]


async def test_deleting_the_newest_entries_is_reported_with_the_missing_range(
    store: Store,
) -> None:
    log = AuditLog(store)
    await entries(log, 10)
    await checkpointer(store).checkpoint()
    await cut_tail(store, 6)
    assert (await verify(store)).ok  # what is left is still a valid chain...
    verdict = await check(store)
    assert not verdict.ok  # ...but the checkpoint vouched for more
    assert "TRUNCATED: entries 7..10 (4) are missing" in verdict.message


async def test_a_cut_tail_written_again_is_reported_as_rewritten(store: Store) -> None:
    log = AuditLog(store)
    await entries(log, 8)
    await checkpointer(store).checkpoint()
    await cut_tail(store, 4)
    await entries(AuditLog(store), 6, 100)  # new entries take the old numbers 5..10
    verdict = await check(store)
    assert not verdict.ok
    assert "REWRITTEN: entry 8" in verdict.message


async def test_an_edited_or_foreign_checkpoint_line_is_not_believed(
    store: Store, tmp_path: Path
) -> None:
    log = AuditLog(store)
    await entries(log, 4)
    await checkpointer(store).checkpoint()
    file = store.data_dir / CHECKPOINT_FILE
    line = json.loads(file.read_text())
    line["seq"] = 2  # pretend the log was shorter
    foreign = Checkpointer(store, tmp_path / "other.key", tmp_path / "other.jsonl", node="x")
    other = await foreign.checkpoint()
    assert other is not None
    file.write_text(json.dumps(line) + "\n" + other.line() + "\n")
    verdict = await check(store)
    assert not verdict.ok
    assert verdict.problems == (
        "checkpoint line 1: its signature does not match: the line was edited",
        f"checkpoint line 2: signed with another key ({other.key})",
    )


async def test_the_command_checks_the_tail(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    log = AuditLog(store)
    await entries(log, 6)
    data = store.data_dir

    async def verify_cmd(*more: str) -> int:  # the command runs its own loop: on a thread
        return await asyncio.to_thread(main, ["audit", "verify", "--data", str(data), *more])

    assert await verify_cmd("--require-checkpoints") == 1
    assert await verify_cmd() == 0
    assert "no checkpoints yet" in capsys.readouterr().out
    await checkpointer(store).checkpoint()
    assert await verify_cmd() == 0
    assert "and it is there unchanged" in capsys.readouterr().out
    await cut_tail(store, 3)
    assert await verify_cmd() == 1
    assert "TRUNCATED: entries 4..6 (3) are missing" in capsys.readouterr().err
    # Deleting the checkpoint file does not hide the cut: the key says a server signed.
    (data / CHECKPOINT_FILE).unlink()
    assert await verify_cmd() == 1
    assert "the checkpoint file" in capsys.readouterr().err


async def test_the_server_signs_the_head_when_it_stops(start_app: Any, tmp_path: Path) -> None:
    client = await start_app()
    resp = await client.post(
        "/v1/auth/login", json={"email": "nobody@example.com", "password": "x"}
    )
    assert resp.status == 401  # a failed login: one audit entry
    await client.close()
    data = tmp_path / "data"
    public = load_key(data / KEY_FILE).public_key()
    (last, *_) = reversed(list(read_checkpoints(data / CHECKPOINT_FILE, public)))
    assert last.checkpoint is not None  # well formed and signed with the server's key
    store = Store(data)
    await store.open()
    try:
        assert await store.audit.head() == (last.checkpoint.seq, last.checkpoint.hash)
    finally:
        await store.close()


async def test_a_checkpoint_of_another_audit_log_is_named_as_such(
    store: Store, tmp_path: Path
) -> None:
    other = Store(tmp_path / "other")
    await other.open()
    try:
        await entries(AuditLog(other), 3)
        key = store.data_dir / KEY_FILE
        foreign = Checkpointer(other, key, store.data_dir / CHECKPOINT_FILE, node="elsewhere")
        await foreign.checkpoint()  # same key, but the other database's chain
    finally:
        await other.close()
    await entries(AuditLog(store), 3, 10)
    verdict = await check(store)
    assert not verdict.ok
    assert verdict.problems == (
        "checkpoint line 1: of another audit log (its first entry differs)",
    )
