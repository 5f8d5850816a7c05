"""Erasure, export, purge and the audit check through the use cases, served and from the CLI."""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ivr.services import audit, privacy
from ivr.services.context import local
from ivr.services.errors import Conflict, Forbidden, Invalid, Missing
from tests.ivr.services.conftest import Served


async def test_an_agent_exports_only_their_own_data(served: Served) -> None:
    ctx = served.ctx
    seq = await served.last_seq()
    with pytest.raises(Forbidden, match="only their own"):
        await privacy.export(ctx, served.agent, "agent", served.admin.id)
    with pytest.raises(Forbidden):
        await privacy.export(ctx, served.agent, "contact", "+15557654321")
    assert [(e.action, e.outcome) for e in await served.audit_since(seq)] == [
        ("privacy.export", "refused"),
        ("privacy.export", "refused"),
    ]
    with pytest.raises(Invalid, match="since must be before until"):
        await privacy.export(
            ctx,
            served.admin,
            "contact",
            "+15557654321",
            since="2026-02-01T00:00:00.000Z",
            until="2026-01-01T00:00:00.000Z",
        )
    done = await privacy.export(ctx, served.agent, "agent", served.agent.id)
    assert done.path.parent == ctx.store.data_dir / "exports"
    assert done.manifest["counts"]["calls"] == 0
    assert "manifest.json" in zipfile.ZipFile(done.path).namelist()
    contact = await privacy.export(ctx, served.admin, "contact", "+15557654321")
    entries = await served.audit_since(seq)
    assert [(e.outcome, e.object_id) for e in entries[-2:]] == [
        ("ok", served.agent.id),
        ("ok", "+1555*****21"),  # a caller's number is masked in the audit log
    ]
    assert contact.manifest["subject"] == {"kind": "contact", "value": "+15557654321"}


async def test_erasing_an_agent_ends_their_sessions_and_is_audited(served: Served) -> None:
    ctx = served.ctx
    with pytest.raises(Missing, match="no such agent"):
        await privacy.erase(ctx, served.admin, "agent", "u_nobody")
    with pytest.raises(Forbidden, match="only an Owner erases an Owner"):
        await privacy.erase(ctx, served.admin, "agent", served.owner.id)
    with pytest.raises(Conflict, match="cannot erase yourself"):
        await privacy.erase(ctx, served.admin, "agent", served.admin.id)
    assert ctx.sessions is not None
    token, _ = await ctx.sessions.login("ana@example.com", "correct horse battery")
    seq = await served.last_seq()
    receipt = await privacy.erase(ctx, served.admin, "agent", served.agent.id)
    assert receipt["requested_by"] == served.admin.id
    assert await ctx.store.users.get(served.agent.id) is None
    with pytest.raises(Exception, match="unknown or expired"):
        await ctx.sessions.user(token)
    [entry] = await served.audit_since(seq)
    assert (entry.action, entry.object_id, entry.detail) == (
        "privacy.erase_agent",
        receipt["id"],
        {"erased": receipt["erased"]},
    )
    assert await ctx.store.privacy.receipts() == [receipt]


async def test_retention_runs_are_audited_with_their_count(served: Served) -> None:
    seq = await served.last_seq()
    receipt = await privacy.purge(served.ctx, served.admin)
    assert (receipt["recordings"], receipt["requested_by"]) == (0, served.admin.id)
    [entry] = await served.audit_since(seq)
    assert (entry.action, entry.detail) == ("privacy.retention", {"recordings": 0})


async def test_the_cli_erases_exports_and_purges_unaudited_as_cli(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with local(data) as ctx:
        agent = await ctx.store.users.add("a@example.com", "A", "agent", "h")
        assert await privacy.agent_subject(ctx, "a@example.com") == agent.id
        with pytest.raises(Missing, match="no user with that e-mail"):
            await privacy.agent_subject(ctx, "b@example.com")
        out = tmp_path / "a.zip"
        done = await privacy.export(ctx, None, "agent", agent.id, out=out)
        assert done.path == out
        assert out.is_file()
        purged = await privacy.purge(ctx, None, datetime.now(UTC) + timedelta(days=1))
        assert purged["requested_by"] == "cli"
        receipt = await privacy.erase(ctx, None, "agent", agent.id)
        assert receipt["requested_by"] == "cli"
        with pytest.raises(Missing, match="no such agent"):
            await privacy.erase(ctx, None, "agent", agent.id)
        assert await ctx.store.audit.entries() == []  # the CLI writes no audit entry


async def test_verifying_the_chain_finds_the_first_edited_entry(served: Served) -> None:
    ctx = served.ctx
    await privacy.purge(ctx, served.admin)
    verdict = await audit.verify_chain(ctx)
    assert verdict.ok
    assert verdict.entries >= 1
    await ctx.store.db.execute("DROP TRIGGER audit_append_only_update")
    await ctx.store.db.execute("UPDATE audit SET outcome = 'failed' WHERE seq = 1")
    await ctx.store.db.commit()
    broken = await audit.verify_chain(ctx)
    assert (broken.ok, broken.first_bad_seq) == (False, 1)
