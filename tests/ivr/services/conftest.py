"""The use cases against the real app: its store, audit log, switchboard and authenticator."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ivr.access.auth import CHEAP, hash_password
from ivr.server.keys import audit_key, authenticator_key, store_key, switchboard_key
from ivr.services.context import Context
from ivr.store import AuditEntry, Role, User
from tests.conftest import AppFactory


@dataclass
class Served:
    """A running app's context, and one user of each role."""

    ctx: Context
    owner: User
    admin: User
    agent: User

    async def audit_since(self, seq: int) -> list[AuditEntry]:
        assert self.ctx.audit is not None
        return await self.ctx.audit.entries(after=seq, limit=1000)

    async def last_seq(self) -> int:
        entries = await self.audit_since(0)
        return entries[-1].seq if entries else 0


async def make_user(ctx: Context, email: str, role: Role, teams: tuple[str, ...] = ()) -> User:
    hashed = await hash_password("correct horse battery", CHEAP)
    return await ctx.store.users.add(email, email.split("@")[0].title(), role, hashed, teams)


@pytest.fixture
async def served(start_app: AppFactory) -> Served:
    client = await start_app()
    app = client.app
    ctx = Context(
        store=app[store_key],
        audit=app[audit_key],
        switchboard=app[switchboard_key],
        sessions=app[authenticator_key],
        hash_params=CHEAP,
    )
    return Served(
        ctx,
        owner=await make_user(ctx, "own@example.com", "owner"),
        admin=await make_user(ctx, "adm@example.com", "admin"),
        agent=await make_user(ctx, "ana@example.com", "agent", ("desk",)),
    )
