"""Users and teams through the use cases: the rules, the live changes, the audit entries."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.access.auth import CHEAP
from ivr.services import teams, users
from ivr.services.context import Context, local
from ivr.services.errors import Conflict, Forbidden, Invalid, Missing
from tests.ivr.services.conftest import Served


async def test_adding_a_user_is_audited_and_a_taken_email_is_a_conflict(served: Served) -> None:
    seq = await served.last_seq()
    sam = await users.add_user(
        served.ctx,
        served.admin,
        email="sam@example.com",
        name="Sam",
        role="supervisor",
        password="a long password",
        teams=["desk"],
    )
    assert (sam.role, sam.teams) == ("supervisor", ("desk",))
    found = await served.ctx.store.users.credentials("sam@example.com")
    assert found is not None
    assert found.password_hash.startswith("$argon2id$")
    [entry] = await served.audit_since(seq)
    assert (entry.action, entry.outcome, entry.object_id, entry.detail) == (
        "users.create",
        "ok",
        sam.id,
        {"role": "supervisor"},
    )
    with pytest.raises(Conflict, match="already exists"):
        await users.add_user(
            served.ctx,
            served.admin,
            email="SAM@example.com",
            name="S",
            role="agent",
            password="a long password",
        )


async def test_only_an_owner_makes_an_owner_and_the_refusal_is_audited(served: Served) -> None:
    seq = await served.last_seq()
    with pytest.raises(Forbidden, match="only an Owner"):
        await users.add_user(
            served.ctx,
            served.admin,
            email="o2@example.com",
            name="O",
            role="owner",
            password="a long password",
        )
    [entry] = await served.audit_since(seq)
    assert (entry.action, entry.outcome, entry.detail) == (
        "users.create",
        "refused",
        {"new_role": "owner"},
    )
    assert await served.ctx.store.users.credentials("o2@example.com") is None
    made = await users.add_user(
        served.ctx,
        served.owner,
        email="o2@example.com",
        name="O",
        role="owner",
        password="a long password",
    )
    assert made.role == "owner"


async def test_the_cli_adds_the_first_owner_without_an_audit_entry(tmp_path: Path) -> None:
    async with local(tmp_path / "data") as ctx:
        assert ctx.audit is None
        owner = await users.add_user(
            Context(ctx.store, hash_params=CHEAP),
            None,
            email="first@example.com",
            name="First",
            role="owner",
            password="a long password",
        )
        assert owner.role == "owner"
        assert await ctx.store.audit.entries() == []


async def test_a_new_role_ends_the_users_sessions_and_nobody_changes_their_own(
    served: Served,
) -> None:
    auth = served.ctx.sessions
    assert auth is not None
    token, _ = await auth.login("ana@example.com", "correct horse battery")
    seq = await served.last_seq()
    changed = await users.change_user(
        served.ctx, served.admin, served.agent.id, role="supervisor", fields={"role"}
    )
    assert changed.role == "supervisor"
    with pytest.raises(Exception, match="unknown or expired"):
        await auth.user(token)
    [entry] = await served.audit_since(seq)
    assert (entry.action, entry.detail) == ("users.update", {"fields": ["role"]})
    with pytest.raises(Forbidden, match="your own role"):
        await users.change_user(served.ctx, served.admin, served.admin.id, role="agent")
    with pytest.raises(Missing, match="no user u_nobody"):
        await users.change_user(served.ctx, served.admin, "u_nobody", name="x")
    renamed = await users.change_user(served.ctx, served.admin, changed.id, name="Ana B")
    assert renamed.name == "Ana B"


async def test_deleting_a_user_never_oneself_nor_an_owner_by_an_admin(served: Served) -> None:
    with pytest.raises(Conflict, match="cannot delete yourself"):
        await users.delete_user(served.ctx, served.owner, served.owner.id)
    seq = await served.last_seq()
    with pytest.raises(Forbidden):
        await users.delete_user(served.ctx, served.admin, served.owner.id)
    assert [e.outcome for e in await served.audit_since(seq)] == ["refused"]
    await users.delete_user(served.ctx, served.admin, served.agent.id)
    assert await served.ctx.store.users.get(served.agent.id) is None
    assert [(e.action, e.object_id) for e in await served.audit_since(seq)][-1] == (
        "users.delete",
        served.agent.id,
    )
    with pytest.raises(Missing):
        await users.delete_user(served.ctx, served.admin, served.agent.id)


async def test_teams_are_created_changed_and_deleted_live(served: Served) -> None:
    sb = served.ctx.live()
    seq = await served.last_seq()
    made = await teams.create_team(served.ctx, served.admin, "night", bots=2)
    assert made.bots == 2
    assert sb.teams["night"].bots == 2
    assert await served.ctx.store.catalog.source_of("teams", "night") == "api"
    with pytest.raises(Conflict, match="already exists"):
        await teams.create_team(served.ctx, served.admin, "night")
    with pytest.raises(Invalid, match=r"no prompt file nope\.wav") as bad:
        await teams.change_team(served.ctx, served.admin, "night", bot_greeting="nope")
    assert bad.value.field == "bot_greeting"
    kept = await teams.change_team(served.ctx, served.admin, "night", bots=0)
    assert (kept.bots, kept.bot_greeting) == (0, None)  # the greeting was kept (none)
    with pytest.raises(Missing, match="no team gone"):
        await teams.change_team(served.ctx, served.admin, "gone", bots=1)
    with pytest.raises(Conflict, match="is rung by flow"):
        await teams.delete_team(served.ctx, served.admin, "support")
    await teams.delete_team(served.ctx, served.admin, "night")
    assert "night" not in sb.teams
    assert [(e.action, e.detail) for e in await served.audit_since(seq)] == [
        ("teams.create", {"bots": 2}),
        ("teams.update", {"bots": 0}),
        ("teams.delete", {}),
    ]
