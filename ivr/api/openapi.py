"""The API described as an OpenAPI 3.1 document, served at ``/v1/openapi.json``.

A test checks that every route of the app is here and everything here is a
route, and the fuzz test drives the API from this document. It is long (about
450 lines) because it is data: one entry per route, read top to bottom.
"""

from __future__ import annotations

from typing import Any, Literal

from ivr import __version__

_ERROR = {"$ref": "#/components/schemas/Error"}
_ID = {"type": "string", "minLength": 1, "maxLength": 80}


def _resp(
    schema: dict[str, Any] | None = None,
    *,
    status: str = "200",
    content: str = "application/json",
    errors: tuple[int, ...] = (401, 403),
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if schema is None:
        out[status] = {"description": "done"}
    else:
        out[status] = {"description": "ok", "content": {content: {"schema": schema}}}
    for code in (*errors, 422):
        out[str(code)] = _error_response()
    return out


def _error_response() -> dict[str, Any]:
    return {"description": "error", "content": {"application/json": {"schema": _ERROR}}}


# Every request that may carry a body can be refused by its headers alone
# (ivr.api.base.check_body): 413 for its length, 415 for its coding or type.
_BODY_ERRORS = ("413", "415")


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    params: list[dict[str, Any]] | None = None,
    auth: bool = True,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if params:
        op["parameters"] = params
    if not auth:
        op["security"] = []
    return op


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _ID}


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


_TIME = {"type": "string", "format": "date-time"}
_PAGE = [
    _query("cursor", {"type": "string"}),
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
]
_RANGE = [_query("since", _TIME), _query("until", _TIME)]
_OBJ = {"type": "object"}
_LIST = {
    "type": "object",
    "required": ["items"],
    "properties": {"items": {"type": "array", "items": _OBJ}, "next": {"type": ["string", "null"]}},
}
_ROLE = {"enum": ["agent", "supervisor", "admin", "owner"]}
_USER = {
    "type": "object",
    "required": ["id", "email", "name", "role", "teams"],
    "properties": {
        "id": {"type": "string"},
        "email": {"type": "string"},
        "name": {"type": "string"},
        "role": _ROLE,
        "teams": {"type": "array", "items": {"type": "string"}},
    },
}


MetricsAccess = Literal["open", "token", "elsewhere"]


def document(metrics: MetricsAccess = "open") -> dict[str, Any]:
    """The whole OpenAPI 3.1 document.

    ``metrics`` says how this server serves ``/metrics`` (docs/access.md):
    open, behind the metrics token, or not here but on a listener of its own.
    """
    paths: dict[str, dict[str, Any]] = {
        "/v1/auth/login": {
            "post": _op(
                "Sign in",
                _resp(
                    {
                        "type": "object",
                        "required": ["token", "user"],
                        "properties": {"token": {"type": "string"}, "user": _USER},
                    },
                    errors=(400, 401, 413, 429),
                ),
                body={
                    "type": "object",
                    "required": ["email", "password"],
                    "additionalProperties": False,
                    "properties": {"email": {"type": "string"}, "password": {"type": "string"}},
                },
                auth=False,
            )
        },
        "/v1/auth/logout": {"post": _op("Sign out (the token stops working)", _resp(status="204"))},
        "/v1/me": {"get": _op("The signed-in user", _resp(_USER))},
        "/v1/users": {
            "get": _op("Users", _resp(_LIST)),
            "post": _op(
                "Add a user",
                _resp(_USER, status="201", errors=(400, 401, 403, 409)),
                body={
                    "type": "object",
                    "required": ["email", "name", "role", "password"],
                    "additionalProperties": False,
                    "properties": {
                        "email": {"type": "string"},
                        "name": {"type": "string"},
                        "role": _ROLE,
                        "teams": {"type": "array", "items": {"type": "string"}},
                        "password": {"type": "string", "minLength": 8},
                    },
                },
            ),
        },
        "/v1/users/{user_id}": {
            "parameters": [_path("user_id")],
            "patch": _op(
                "Change a user",
                _resp(_USER, errors=(400, 401, 403, 404)),
                body={
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string"},
                        "role": _ROLE,
                        "teams": {"type": "array", "items": {"type": "string"}},
                        "password": {"type": "string"},
                    },
                },
            ),
            "delete": _op("Remove a user", _resp(status="204", errors=(401, 403, 404, 409))),
        },
        "/v1/teams": {
            "get": _op("Teams, with who is signed in and waiting calls", _resp(_LIST)),
            "post": _op(
                "Add a team",
                _resp(_OBJ, status="201", errors=(400, 401, 403, 409)),
                body={
                    "type": "object",
                    "required": ["id"],
                    "additionalProperties": False,
                    "properties": {
                        "id": {"type": "string"},
                        "bots": {"type": "integer"},
                        "bot_greeting": {"type": ["string", "null"]},
                    },
                },
            ),
        },
        "/v1/teams/{team_id}": {
            "parameters": [_path("team_id")],
            "patch": _op(
                "Change a team's bots",
                _resp(_OBJ, errors=(400, 401, 403, 404)),
                body={
                    "type": "object",
                    "properties": {
                        "bots": {"type": "integer"},
                        "bot_greeting": {"type": ["string", "null"]},
                    },
                },
            ),
            "delete": _op(
                "Remove a team no flow rings", _resp(status="204", errors=(401, 403, 404, 409))
            ),
        },
        "/v1/numbers": {"get": _op("Numbers and their privacy settings", _resp(_LIST))},
        "/v1/numbers/{number_id}": {
            "parameters": [_path("number_id")],
            "get": _op("A number", _resp(_OBJ, errors=(401, 403, 404))),
            "patch": _op(
                "Change a number (effective for the next call); with dry_run=true only "
                "check it (the compliance verdict), saving nothing",
                _resp(_OBJ, errors=(400, 401, 403, 404)),
                body={
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string"},
                        "flow": {"type": "string"},
                        "recording": {"type": "boolean"},
                        "transcription": {"type": "boolean"},
                        "record_percent": {"type": "integer", "minimum": 0, "maximum": 100},
                        "retention_days": {"type": "integer", "minimum": 1},
                        "consent_mode": {"enum": ["opt_in", "notice"]},
                    },
                },
                params=[_query("dry_run", {"enum": ["true", "1"]})],
            ),
        },
        "/v1/flows": {"get": _op("Flows", _resp(_LIST))},
        "/v1/flows/check": {
            "post": _op(
                "Validate a flow without saving it",
                _resp(
                    {"type": "object", "required": ["valid", "problems"]}, errors=(400, 401, 403)
                ),
                body={"type": "object"},
            )
        },
        "/v1/flows/{flow_id}": {
            "parameters": [_path("flow_id")],
            "get": _op("A flow and its versions", _resp(_OBJ, errors=(401, 403, 404))),
            "put": _op(
                "Replace a flow (validated as the config file is)",
                _resp(_OBJ, errors=(400, 401, 403)),
                body={"type": "object", "required": ["start", "nodes"]},
            ),
        },
        "/v1/calls": {"get": _op("Calls (an Agent's own)", _resp(_LIST), params=_PAGE)},
        "/v1/calls/{call_id}": {
            "parameters": [_path("call_id")],
            "get": _op(
                "A call with its recording decision, consent evidence and events",
                _resp(_OBJ, errors=(401, 403, 404)),
            ),
        },
        "/v1/calls/{call_id}/events": {
            "parameters": [_path("call_id")],
            "get": _op(
                "A call's events, a page at a time (oldest first)",
                _resp(_LIST, errors=(401, 403, 404)),
                params=[
                    _query("after", {"type": "integer", "minimum": 0}),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                ],
            ),
        },
        "/v1/calls/{call_id}/recording/pause": {
            "parameters": [_path("call_id")],
            "post": _op(
                "Pause a live call's recording", _resp(_OBJ, errors=(400, 401, 403, 404, 409))
            ),
        },
        "/v1/calls/{call_id}/recording/resume": {
            "parameters": [_path("call_id")],
            "post": _op(
                "Resume a live call's recording", _resp(_OBJ, errors=(400, 401, 403, 404, 409))
            ),
        },
        "/v1/recordings": {
            "get": _op(
                "Recordings (an Agent's own)",
                _resp(_LIST),
                params=[
                    *_PAGE,
                    *_RANGE,
                    _query("agent_id", {"type": "string"}),
                    _query("contact", {"type": "string"}),
                ],
            )
        },
        "/v1/recordings/{recording_id}": {
            "parameters": [_path("recording_id")],
            "get": _op(
                "A recording's metadata, consent evidence and QA notes",
                _resp(_OBJ, errors=(401, 403, 404)),
            ),
            "patch": _op(
                "Add a QA note, set the score or tags",
                _resp(_OBJ, errors=(400, 401, 403, 404)),
                body={
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "note": {"type": "string"},
                        "score": {"type": ["integer", "null"], "minimum": 0, "maximum": 100},
                        "tags": {"type": "array", "items": {"type": "string"}},
                    },
                },
            ),
            "delete": _op(
                "Delete a recording and its file", _resp(status="204", errors=(401, 403, 404))
            ),
        },
        "/v1/recordings/{recording_id}/audio": {
            "parameters": [_path("recording_id")],
            "get": _op(
                "The recording as a stereo WAV (caller left, agent right); one byte range "
                "of a Range header gives 206, several give the whole file",
                {
                    **_resp(
                        {"type": "string", "format": "binary"},
                        content="audio/wav",
                        errors=(401, 403, 404, 416),
                    ),
                    "206": {
                        "description": "the byte range asked for",
                        "content": {
                            "audio/wav": {"schema": {"type": "string", "format": "binary"}}
                        },
                    },
                },
            ),
        },
        "/v1/recordings/{recording_id}/transcript": {
            "parameters": [_path("recording_id")],
            "get": _op("The recording's transcript", _resp(_OBJ, errors=(401, 403, 404))),
        },
        "/v1/analytics/summary": {
            "get": _op(
                "Calls, answered, recorded, consent rate, handle time; per team and agent",
                _resp(_OBJ),
                params=_RANGE,
            )
        },
        "/v1/analytics/export": {
            "get": _op(
                "The summary as CSV", _resp({"type": "string"}, content="text/csv"), params=_RANGE
            )
        },
        "/v1/audit": {
            "get": _op(
                "The audit log, oldest first",
                _resp(_LIST),
                params=[
                    _query("after", {"type": "integer", "minimum": 0}),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                    _query("action", {"type": "string"}),
                    _query("actor_id", {"type": "string"}),
                    _query("object_id", {"type": "string"}),
                ],
            )
        },
        "/v1/billing": {
            "get": _op(
                "Usage: minutes, recorded minutes, storage, seats", _resp(_OBJ), params=_RANGE
            )
        },
        "/v1/privacy/exports": {
            "post": _op(
                "An access export: a ZIP of a contact's or agent's calls, consents, recordings "
                "and notes, with a manifest of SHA-256 checksums",
                _resp(
                    {"type": "string", "format": "binary"},
                    content="application/zip",
                    errors=(400, 401, 403),
                ),
                body={
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "contact": {"type": "string"},
                        "agent_id": {"type": "string"},
                        "since": _TIME,
                        "until": _TIME,
                    },
                },
            )
        },
        "/v1/privacy/erasures": {
            "post": _op(
                "Erase a contact or an agent; returns the receipt",
                _resp(_OBJ, status="201", errors=(400, 401, 403, 404, 409)),
                body={
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"contact": {"type": "string"}, "agent_id": {"type": "string"}},
                },
            )
        },
        "/v1/privacy/retention/run": {
            "post": _op("Delete every recording past its retention now", _resp(_OBJ))
        },
        "/v1/privacy/blocks": {
            "get": _op(
                "Callers blocked from being recorded (they were erased), by pseudonym",
                _resp(_LIST),
            )
        },
        "/v1/privacy/blocks/lift": {
            "post": _op(
                "Let an erased caller be recorded again (their objection withdrawn)",
                _resp(_OBJ, errors=(400, 401, 403, 404)),
                body={
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["contact"],
                    "properties": {"contact": {"type": "string"}},
                },
            )
        },
        "/v1/openapi.json": {"get": _op("This document", _resp(_OBJ, errors=()), auth=False)},
    }
    if metrics != "elsewhere":
        op = _op(
            "Prometheus metrics: counters and histograms, nothing personal",
            _resp(
                {"type": "string"},
                content="text/plain",
                errors=(401,) if metrics == "token" else (),
            ),
            auth=False,
        )
        if metrics == "token":
            op["security"] = [{"metrics_token": []}]
        paths["/metrics"] = {"get": op}
    for ops in paths.values():
        for method, op in ops.items():
            if method in ("post", "put", "patch"):
                for code in _BODY_ERRORS:
                    op["responses"].setdefault(code, _error_response())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ivr softswitch API",
            "version": __version__,
            "description": "Roles and permissions: docs/access.md. "
            "WebSocket call protocol: docs/protocol.md.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "metrics_token": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the metrics token given to ivr serve, not a user's",
                },
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                }
            },
        },
    }
