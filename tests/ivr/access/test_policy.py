"""``permits()`` over the whole matrix: every action and role, on no object, their own, another's.

The table is docs/access.md's ("Who may call what"), written out here by
hand rather than read from ``policy.MATRIX``, so that a change to either
shows. ``yes``: the role may; ``own``: only on objects of calls the user
handled (an agent's own calls, recordings, exports); ``no``: never.
Pure function, no I/O.
"""

from __future__ import annotations

from typing import get_args

import pytest

from ivr.access.policy import MATRIX, Action, permits, scope
from ivr.store import ROLES, Role, User

TABLE = """
action                    agent  supervisor  admin  owner
session                   yes    yes         yes    yes
users.read                no     yes         yes    yes
users.write               no     no          yes    yes
teams.read                no     yes         yes    yes
teams.write               no     no          yes    no
numbers.read              no     yes         yes    yes
numbers.write             no     no          yes    no
flows.read                no     yes         yes    no
flows.write               no     no          yes    no
calls.read                own    yes         yes    no
calls.recording_control   own    yes         yes    no
recordings.read           own    yes         yes    no
recordings.audio          own    yes         yes    no
recordings.transcript     own    yes         yes    no
recordings.annotate       no     yes         yes    no
recordings.delete         no     yes         yes    no
analytics.read            no     yes         yes    no
privacy.export            own    yes         yes    no
privacy.erase_contact     no     no          yes    no
privacy.erase_agent       no     no          yes    yes
privacy.retention         no     no          yes    no
privacy.blocks            no     no          yes    no
audit.read                no     no          yes    yes
billing.read              no     no          no     yes
agent.take_calls          yes    yes         yes    no
"""


def parse(table: str) -> dict[tuple[str, str], str]:
    header, *rows = [line.split() for line in table.strip().splitlines()]
    assert header[1:] == list(ROLES)
    return {(row[0], role): cell for row in rows for role, cell in zip(ROLES, row[1:], strict=True)}


EXPECTED = parse(TABLE)
CASES = sorted(EXPECTED)
ME = "u_me"


def user(role: Role) -> User:
    return User(ME, "me@example.com", "Me", role, ("support",))


def test_the_table_covers_every_action_and_nothing_else() -> None:
    assert {action for action, _ in EXPECTED} == set(get_args(Action)) == set(MATRIX)


@pytest.mark.parametrize(("action", "role"), CASES)
def test_by_role_alone(action: Action, role: Role) -> None:
    """Without an object: may the role do this at all (else a 403)."""
    expected = EXPECTED[action, role]
    assert permits(user(role), action) is (expected != "no")
    assert scope(user(role), action) == {"yes": "all", "own": "own", "no": None}[expected]


@pytest.mark.parametrize(("action", "role"), [c for c in CASES if c[0] != "users.write"])
def test_on_ones_own_object_and_on_another_s(action: Action, role: Role) -> None:
    """A call or recording row (its ``agent_id``); refused on an object: a 404."""
    expected = EXPECTED[action, role]
    mine, theirs = {"agent_id": ME}, {"agent_id": "u_other"}
    assert permits(user(role), action, mine) is (expected in ("yes", "own"))
    assert permits(user(role), action, theirs) is (expected == "yes")
    assert permits(user(role), action, {"agent_id": None}) is (expected == "yes")  # a bot's call


# users.write on an object: {"target_id", "target_role", "new_role"}.
USERS_WRITE = [
    # (role, target, target's role, new role, permitted)
    ("admin", "u_other", "agent", None, True),  # rename, reset a password, delete
    ("admin", "u_other", "agent", "supervisor", True),
    ("admin", "u_other", "owner", None, False),  # an Admin never acts on an Owner
    ("admin", "u_other", "agent", "owner", False),  # nor makes one
    ("admin", None, None, "owner", False),  # nor creates one
    ("admin", None, None, "agent", True),
    ("owner", "u_other", "owner", "agent", True),  # only an Owner grants or removes Owner
    ("owner", "u_other", "agent", "owner", True),
    ("owner", None, None, "owner", True),
    ("admin", ME, "admin", "agent", False),  # nobody changes their own role
    ("owner", ME, "owner", "admin", False),
    ("admin", ME, "admin", "admin", True),  # the same role again is no change
    ("admin", ME, "admin", None, True),  # their own name or password
    ("supervisor", "u_other", "agent", None, False),  # by role, before any object
    ("agent", ME, "agent", None, False),
]


@pytest.mark.parametrize(("role", "target", "target_role", "new_role", "allowed"), USERS_WRITE)
def test_managing_users(
    role: Role, target: str | None, target_role: str | None, new_role: str | None, allowed: bool
) -> None:
    obj = {"target_id": target, "target_role": target_role, "new_role": new_role}
    assert permits(user(role), "users.write", obj) is allowed
