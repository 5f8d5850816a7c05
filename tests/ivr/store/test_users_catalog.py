"""The users and catalog repositories on a real database: typed rows in, typed rows out."""

from __future__ import annotations

import pytest

from ivr.config import NumberConfig
from ivr.errors import NotFound, StoreError
from ivr.store import Credentials, FlowRow, NumberRow, Store, TeamRow, TokenSession, User

# -- users and tokens ------------------------------------------------------------------


async def test_a_user_round_trips_with_their_teams(store: Store) -> None:
    ana = await store.users.add("ana@example.com", "Ana", "agent", "hash-1", ["desk", "a", "desk"])
    assert ana == User(ana.id, "ana@example.com", "Ana", "agent", ("desk", "a"))
    assert await store.users.get(ana.id) == User(
        ana.id, "ana@example.com", "Ana", "agent", ("a", "desk")
    )
    assert await store.users.credentials("ANA@example.com") == Credentials(
        User(ana.id, "ana@example.com", "Ana", "agent", ("a", "desk")), "hash-1"
    )
    assert await store.users.get("u_missing") is None
    assert await store.users.credentials("nobody@example.com") is None
    with pytest.raises(StoreError, match="already exists"):
        await store.users.add("Ana@Example.com", "Other", "admin", "hash-2")
    await store.users.add("bo@example.com", "Bo", "owner", "hash-3")
    assert [u.email for u in await store.users.all()] == ["ana@example.com", "bo@example.com"]


async def test_a_new_role_or_password_ends_every_token_but_a_new_name_does_not(
    store: Store,
) -> None:
    ana = await store.users.add("ana@example.com", "Ana", "agent", "h")
    await store.users.add_token("t1", ana.id, "2999-01-01T00:00:00.000Z")
    now = "2026-01-01T00:00:00.000Z"
    assert await store.users.session("t1", now) == TokenSession(ana, "2999-01-01T00:00:00.000Z")
    renamed = await store.users.update(ana.id, name="Ana B", teams=["sales"])
    assert (renamed.name, renamed.teams) == ("Ana B", ("sales",))
    assert await store.users.session("t1", now) is not None
    await store.users.update(ana.id, role="supervisor")
    assert await store.users.session("t1", now) is None
    await store.users.add_token("t2", ana.id, "2999-01-01T00:00:00.000Z")
    await store.users.update(ana.id, password_hash="h2")
    assert await store.users.session("t2", now) is None
    found = await store.users.credentials("ana@example.com")
    assert found is not None
    assert found.password_hash == "h2"
    with pytest.raises(NotFound):
        await store.users.update("u_missing", name="x")


async def test_tokens_expire_and_go_with_logout_and_with_their_user(store: Store) -> None:
    ana = await store.users.add("ana@example.com", "Ana", "agent", "h")
    await store.users.add_token("old", ana.id, "2020-01-01T00:00:00.000Z")
    await store.users.add_token("live", ana.id, "2999-01-01T00:00:00.000Z")
    now = "2026-01-01T00:00:00.000Z"
    assert await store.users.session("old", now) is None
    await store.users.delete_token("live")
    assert await store.users.session("live", now) is None
    await store.users.add_token("again", ana.id, "2999-01-01T00:00:00.000Z")
    await store.users.delete(ana.id)
    assert await store.users.session("again", now) is None
    assert await store.users.get(ana.id) is None


# -- the catalog -----------------------------------------------------------------------


async def test_numbers_are_upserted_with_their_source(store: Store) -> None:
    number = NumberConfig(name="Support", flow="consent", transcription=True, retention_days=30)
    await store.catalog.save_number("+15550100", number)
    assert await store.catalog.source_of("numbers", "+15550100") == "config"
    await store.catalog.save_number(
        "+15550100", number.model_copy(update={"recording": False}), source="api"
    )
    [row] = await store.catalog.numbers()
    assert isinstance(row, NumberRow)
    assert (row.id, row.recording, row.transcription, row.source) == (
        "+15550100",
        False,
        True,
        "api",
    )
    assert NumberConfig.model_validate(row.settings()) == number.model_copy(
        update={"recording": False}
    )
    assert await store.catalog.source_of("numbers", "+15550199") is None
    with pytest.raises(ValueError, match="no source"):
        await store.catalog.source_of("users", "x")  # type: ignore[arg-type]


async def test_deleting_a_team_takes_it_out_of_every_user(store: Store) -> None:
    await store.catalog.save_team("desk", 0, None)
    await store.catalog.save_team("sales", 4, "hello", source="api")
    ana = await store.users.add("ana@example.com", "Ana", "agent", "h", ["desk", "sales"])
    assert await store.catalog.teams() == [
        TeamRow("desk", 0, None, "config"),
        TeamRow("sales", 4, "hello", "api"),
    ]
    await store.catalog.delete_team("desk")
    assert [t.id for t in await store.catalog.teams()] == ["sales"]
    user = await store.users.get(ana.id)
    assert user is not None
    assert user.teams == ("sales",)


async def test_flows_keep_every_version_and_the_head_says_which_is_used(store: Store) -> None:
    v1 = {"start": "a", "nodes": {"a": {"type": "hangup"}}}
    v2 = {"start": "b", "nodes": {"b": {"type": "hangup"}}}
    await store.catalog.save_flow("f", "v1", v1)
    await store.catalog.save_flow("f", "v1", {"changed": True})  # a kept version stays as it was
    await store.catalog.save_flow("f", "v2", v2)
    assert await store.catalog.current_flows() == []
    await store.catalog.set_flow_head("f", "v1")
    assert await store.catalog.current_flows() == [FlowRow("f", "v1", v1)]
    await store.catalog.set_flow_head("f", "v2", source="api")
    assert await store.catalog.current_flows() == [FlowRow("f", "v2", v2)]
    assert await store.catalog.source_of("flow_heads", "f") == "api"
    assert [v.version for v in await store.catalog.flow_versions("f")] == ["v1", "v2"]
