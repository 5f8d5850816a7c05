"""Who may do what: docs/access.md's matrix as one pure function.

``permits(user, action)`` answers for the role; ``permits(user, action, obj)``
also checks the object: an Agent reaches only calls they handled (``own``),
an Admin never acts on an Owner, only an Owner grants or removes the Owner
role, and nobody changes their own role. The API calls it on every request:
a refusal by role is a 403; a refusal of a particular object that the user
may otherwise see is a 404, exactly as if it did not exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from ivr.store import Role, User

Action = Literal[
    "session",
    "users.read",
    "users.write",
    "teams.read",
    "teams.write",
    "numbers.read",
    "numbers.write",
    "flows.read",
    "flows.write",
    "calls.read",
    "calls.recording_control",
    "recordings.read",
    "recordings.audio",
    "recordings.transcript",
    "recordings.annotate",
    "recordings.delete",
    "analytics.read",
    "privacy.export",
    "privacy.erase_contact",
    "privacy.erase_agent",
    "privacy.retention",
    "privacy.blocks",
    "audit.read",
    "billing.read",
    "agent.take_calls",
]

Reach = Literal["all", "own"]
_ALL: dict[Role, Reach] = {"agent": "all", "supervisor": "all", "admin": "all", "owner": "all"}
_CALL_DATA: dict[Role, Reach] = {"agent": "own", "supervisor": "all", "admin": "all"}
_STAFF: dict[Role, Reach] = {"supervisor": "all", "admin": "all"}
_ADMIN: dict[Role, Reach] = {"admin": "all"}

# action -> role -> reach; a role that is missing may never do it (docs/access.md).
MATRIX: dict[Action, dict[Role, Reach]] = {
    "session": _ALL,
    "users.read": {"supervisor": "all", "admin": "all", "owner": "all"},
    "users.write": {"admin": "all", "owner": "all"},
    "teams.read": {"supervisor": "all", "admin": "all", "owner": "all"},
    "teams.write": _ADMIN,
    "numbers.read": {"supervisor": "all", "admin": "all", "owner": "all"},
    "numbers.write": _ADMIN,
    "flows.read": _STAFF,
    "flows.write": _ADMIN,
    "calls.read": _CALL_DATA,
    "calls.recording_control": _CALL_DATA,
    "recordings.read": _CALL_DATA,
    "recordings.audio": _CALL_DATA,
    "recordings.transcript": _CALL_DATA,
    "recordings.annotate": _STAFF,
    "recordings.delete": _STAFF,
    "analytics.read": _STAFF,
    "privacy.export": _CALL_DATA,
    "privacy.erase_contact": _ADMIN,
    "privacy.erase_agent": {"admin": "all", "owner": "all"},
    "privacy.retention": _ADMIN,
    "privacy.blocks": _ADMIN,
    "audit.read": {"admin": "all", "owner": "all"},
    "billing.read": {"owner": "all"},
    "agent.take_calls": {"agent": "all", "supervisor": "all", "admin": "all"},
}


def scope(user: User, action: Action) -> Reach | None:
    """How far the user's role reaches for ``action`` (None: not at all)."""
    return MATRIX[action].get(user.role)


def permits(user: User, action: Action, obj: Mapping[str, Any] | None = None) -> bool:
    """Whether ``user`` may do ``action``, on ``obj`` if given.

    For call data ``obj`` is a call or recording row (its ``agent_id``); for
    ``privacy.export`` it is the subject (``agent_id``); for ``users.write``
    it is ``{"target_id", "target_role", "new_role"}`` (either may be None).
    """
    reach = scope(user, action)
    if reach is None:
        return False
    if obj is None:
        return True
    if action == "users.write":
        return _may_manage(user, obj)
    if reach == "all":
        return True
    return obj.get("agent_id") == user.id


def _may_manage(user: User, obj: Mapping[str, Any]) -> bool:
    target_role, new_role = obj.get("target_role"), obj.get("new_role")
    if obj.get("target_id") == user.id and new_role is not None and new_role != target_role:
        return False  # nobody changes their own role
    if user.role == "owner":
        return True
    # Admins manage everyone but Owners, and cannot make anyone an Owner.
    return target_role != "owner" and new_role != "owner"
