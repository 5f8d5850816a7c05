"""Helpers for tests that sign agents in on ``/v1/agent``."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import Caller


async def signed_in_agent(
    client: object, new_caller: Callable[..., Caller], token: str, **login: object
) -> Caller:
    """Connect, log in with ``token`` and say ``ready``."""
    agent = new_caller(client, "/v1/agent")
    await agent.connect()
    await agent.send({"type": "login", "token": token, **login})
    await agent.wait_for("logged_in")
    await agent.send({"type": "ready"})
    return agent
