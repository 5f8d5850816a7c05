"""docs/access.md's matrix as one machine-readable table, for the permission tests.

Each row: method, path (with ``{own_call}``, ``{other_call}``, ``{own_rec}``,
``{other_rec}``, ``{agent_user}``... placeholders the test fills from real
data), a body, and per role what must happen:

- ``ok``: allowed (a 2xx, or a 404/409/422 that is about the data, never 401/403);
- ``own``: allowed on the user's own objects (the path names one);
- ``403``: the role may never do this.
"""

from __future__ import annotations

from typing import Any

Expect = str
ROLES = ("agent", "supervisor", "admin", "owner")

MATRIX: list[tuple[str, str, dict[str, Any] | None, dict[str, Expect]]] = [
    ("GET", "/v1/me", None, {"agent": "ok", "supervisor": "ok", "admin": "ok", "owner": "ok"}),
    ("GET", "/v1/users", None, {"agent": "403", "supervisor": "ok", "admin": "ok", "owner": "ok"}),
    ("GET", "/v1/teams", None, {"agent": "403", "supervisor": "ok", "admin": "ok", "owner": "ok"}),
    (
        "POST",
        "/v1/users",
        {
            "email": "new-{role}@example.com",
            "name": "New",
            "role": "agent",
            "password": "a long password",
        },
        {"agent": "403", "supervisor": "403", "admin": "ok", "owner": "ok"},
    ),
    (
        "PATCH",
        "/v1/users/{spare_user}",
        {"name": "Renamed"},
        {"agent": "403", "supervisor": "403", "admin": "ok", "owner": "ok"},
    ),
    (
        "DELETE",
        "/v1/users/{spare_user}",
        None,
        {"agent": "403", "supervisor": "403", "admin": "ok", "owner": "ok"},
    ),
    (
        "POST",
        "/v1/teams",
        {"id": "team-{role}", "bots": 0},
        {"agent": "403", "supervisor": "403", "admin": "ok", "owner": "403"},
    ),
    (
        "PATCH",
        "/v1/teams/spare",
        {"bots": 1},
        {"agent": "403", "supervisor": "403", "admin": "ok", "owner": "403"},
    ),
    (
        "DELETE",
        "/v1/teams/spare",
        None,
        {"agent": "403", "supervisor": "403", "admin": "ok", "owner": "403"},
    ),
    (
        "GET",
        "/v1/numbers",
        None,
        {"agent": "403", "supervisor": "ok", "admin": "ok", "owner": "ok"},
    ),
    (
        "GET",
        "/v1/numbers/+15550100",
        None,
        {"agent": "403", "supervisor": "ok", "admin": "ok", "owner": "ok"},
    ),
    (
        "PATCH",
        "/v1/numbers/+15550100",
        {"record_percent": 100},
        {"agent": "403", "supervisor": "403", "admin": "ok", "owner": "403"},
    ),
    ("GET", "/v1/flows", None, {"agent": "403", "supervisor": "ok", "admin": "ok", "owner": "403"}),
    (
        "GET",
        "/v1/flows/consent",
        None,
        {"agent": "403", "supervisor": "ok", "admin": "ok", "owner": "403"},
    ),
    (
        "PUT",
        "/v1/flows/consent",
        "{flow}",  # type: ignore[list-item]
        {"agent": "403", "supervisor": "403", "admin": "ok", "owner": "403"},
    ),
    (
        "POST",
        "/v1/flows/check",
        "{flow}",  # type: ignore[list-item]
        {"agent": "403", "supervisor": "403", "admin": "ok", "owner": "403"},
    ),
    ("GET", "/v1/calls", None, {"agent": "own", "supervisor": "ok", "admin": "ok", "owner": "403"}),
    (
        "GET",
        "/v1/calls/{call}",
        None,
        {"agent": "own", "supervisor": "ok", "admin": "ok", "owner": "403"},
    ),
    (
        "GET",
        "/v1/calls/{call}/events",
        None,
        {"agent": "own", "supervisor": "ok", "admin": "ok", "owner": "403"},
    ),
    (
        "POST",
        "/v1/calls/{call}/recording/pause",
        None,
        {"agent": "own", "supervisor": "ok", "admin": "ok", "owner": "403"},
    ),
    (
        "POST",
        "/v1/calls/{call}/recording/resume",
        None,
        {"agent": "own", "supervisor": "ok", "admin": "ok", "owner": "403"},
    ),
    (
        "GET",
        "/v1/recordings",
        None,
        {"agent": "own", "supervisor": "ok", "admin": "ok", "owner": "403"},
    ),
    (
        "GET",
        "/v1/recordings/{rec}",
        None,
        {"agent": "own", "supervisor": "ok", "admin": "ok", "owner": "403"},
    ),
    (
        "GET",
        "/v1/recordings/{rec}/audio",
        None,
        {"agent": "own", "supervisor": "ok", "admin": "ok", "owner": "403"},
    ),
    (
        "GET",
        "/v1/recordings/{rec}/transcript",
        None,
        {"agent": "own", "supervisor": "ok", "admin": "ok", "owner": "403"},
    ),
    (
        "PATCH",
        "/v1/recordings/{rec}",
        {"note": "good call", "score": 80, "tags": ["qa"]},
        {"agent": "403", "supervisor": "ok", "admin": "ok", "owner": "403"},
    ),
    (
        "DELETE",
        "/v1/recordings/{spare_rec}",
        None,
        {"agent": "403", "supervisor": "ok", "admin": "ok", "owner": "403"},
    ),
    (
        "GET",
        "/v1/analytics/summary",
        None,
        {"agent": "403", "supervisor": "ok", "admin": "ok", "owner": "403"},
    ),
    (
        "GET",
        "/v1/analytics/export",
        None,
        {"agent": "403", "supervisor": "ok", "admin": "ok", "owner": "403"},
    ),
    ("GET", "/v1/audit", None, {"agent": "403", "supervisor": "403", "admin": "ok", "owner": "ok"}),
    (
        "GET",
        "/v1/billing",
        None,
        {"agent": "403", "supervisor": "403", "admin": "403", "owner": "ok"},
    ),
]

# Endpoints whose path names a call or recording: an Agent trying another
# agent's id must get 404 and leave a refusal in the audit log.
OBJECT_PATHS = [
    (m, p, b) for m, p, b, e in MATRIX if e["agent"] == "own" and ("{call}" in p or "{rec}" in p)
]

# The privacy endpoints come last: erasures change the data behind the rows above.
MATRIX += [
    (
        "POST",
        "/v1/privacy/exports",
        {"agent_id": "{me}"},
        {"agent": "own", "supervisor": "ok", "admin": "ok", "owner": "403"},
    ),
    (
        "POST",
        "/v1/privacy/retention/run",
        None,
        {"agent": "403", "supervisor": "403", "admin": "ok", "owner": "403"},
    ),
    (
        "POST",
        "/v1/privacy/erasures",
        {"contact": "+15559990000"},
        {"agent": "403", "supervisor": "403", "admin": "ok", "owner": "403"},
    ),
    # After the contact's erasure (the Admin's, above): their block is there to lift.
    (
        "GET",
        "/v1/privacy/blocks",
        None,
        {"agent": "403", "supervisor": "403", "admin": "ok", "owner": "403"},
    ),
    (
        "POST",
        "/v1/privacy/blocks/lift",
        {"contact": "+15559990000"},
        {"agent": "403", "supervisor": "403", "admin": "ok", "owner": "403"},
    ),
    (
        "POST",
        "/v1/privacy/erasures",
        {"agent_id": "{spare_agent}"},
        {"agent": "403", "supervisor": "403", "admin": "ok", "owner": "ok"},
    ),
]
