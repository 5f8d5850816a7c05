"""Who may do what: ACCESS.md's matrix as one pure function.

``permits(user, action)`` answers for the role; ``permits(user, action, obj)``
also checks the object (an Agent sees only calls they handled). The API calls
it for every request: a refusal without an object is a 403; a refusal of a
particular object is a 404, exactly as if it did not exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from ivr.store import Role, User

Action = Literal[
    "session",  # login, logout, /v1/me
    "calls.read",
    "recordings.read",
    "recordings.audio",
    "agent.take_calls",
]

# action -> role -> "all" | "own"; a missing role may never do it.
MATRIX: dict[Action, dict[Role, Literal["all", "own"]]] = {
    "session": {"agent": "all", "supervisor": "all", "admin": "all", "owner": "all"},
    "calls.read": {"agent": "own", "supervisor": "all", "admin": "all"},
    "recordings.read": {"agent": "own", "supervisor": "all", "admin": "all"},
    "recordings.audio": {"agent": "own", "supervisor": "all", "admin": "all"},
    "agent.take_calls": {"agent": "all", "supervisor": "all", "admin": "all"},
}


def scope(user: User, action: Action) -> Literal["all", "own"] | None:
    """How far the user's role reaches for ``action`` (None: not at all)."""
    return MATRIX[action].get(user.role)


def permits(user: User, action: Action, obj: Mapping[str, Any] | None = None) -> bool:
    """Whether ``user`` may do ``action`` (on ``obj``, a call or recording row)."""
    reach = scope(user, action)
    if reach is None:
        return False
    if obj is None or reach == "all":
        return True
    return obj.get("agent_id") == user.id
