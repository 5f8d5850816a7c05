"""What every API handler shares: errors, the current user, permission checks, bodies."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from ivr.access.audit import AuditLog
from ivr.access.auth import Authenticator
from ivr.access.policy import Action, permits
from ivr.errors import AuthError, IvrError, StorageUnavailable
from ivr.server.keys import audit_key, authenticator_key, settings_key, store_key, switchboard_key
from ivr.services.context import Context
from ivr.services.errors import (
    Conflict,
    Forbidden,
    Invalid,
    InvalidFlow,
    Missing,
    NonCompliant,
    ServiceError,
)
from ivr.store import Store, User

log = logging.getLogger("ivr.api")

MAX_BODY_BYTES = 64 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Route = tuple[str, str, Handler]
M = TypeVar("M", bound=BaseModel)


class ApiError(IvrError):
    """An error response: status, code, message, optional details and response headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra
        self.headers = dict(headers or {})


def error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, **extra}}, status=status)


# A use case's refusal as HTTP: the status and the error code of each kind.
SERVICE_ERRORS: dict[type[ServiceError], tuple[int, str]] = {
    Invalid: (422, "invalid"),
    InvalidFlow: (422, "invalid_flow"),
    NonCompliant: (422, "non_compliant"),
    Missing: (404, "not_found"),
    Conflict: (409, "conflict"),
    Forbidden: (403, "forbidden"),
}


def service_error(exc: ServiceError) -> ApiError:
    """The error response for a use case's refusal: its status, code, field and problems."""
    status, code = next(
        (v for kind, v in SERVICE_ERRORS.items() if isinstance(exc, kind)), (422, "invalid")
    )
    extra: dict[str, Any] = {}
    if exc.field is not None:
        extra["field"] = exc.field
    if exc.problems is not None:
        extra["problems"] = exc.problems
    return ApiError(status, code, exc.message, **extra)


_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "invalid",
}


def check_body(request: web.Request) -> None:
    """Refuse a request body by its headers alone, before a byte of it is read.

    The API takes no compressed bodies. RFC 9110 section 8.4 lets a server
    refuse a content coding it does not accept with 415, and section 15.5.16
    asks it to say which codings it does accept (``Accept-Encoding``, section
    12.5.3): only ``identity``. The body is never inflated (the app's handler
    arguments switch aiohttp's ``auto_decompress`` off), so a small gzip body
    that inflates to gigabytes costs nothing. A ``Content-Length`` over the
    limit is refused (413, RFC 9110 section 15.5.14) before reading too.

    Every body is JSON, and says so: ``Content-Type: application/json`` or
    an ``application/*+json`` type (RFC 6839 section 3.1), any parameters
    ignored (JSON is UTF-8, RFC 8259 section 8.1). Any other type, or none,
    is 415 (RFC 9110 section 15.5.16), so XML or a form is never parsed as
    JSON by accident. A request without a body needs no type.
    """
    if not request.body_exists:
        return
    coding = request.headers.get("Content-Encoding", "").strip().lower()
    if coding not in ("", "identity"):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Encoding {coding[:40]!r} is not accepted: send the body uncompressed",
            headers={"Accept-Encoding": "identity"},
        )
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes")
    if not is_json_type(request):
        raw = request.headers.get("Content-Type")
        said = f"Content-Type {raw[:80]!r} is not accepted" if raw else "no Content-Type"
        # RFC 5789 section 2.2: a 415 to a PATCH names the patch formats taken.
        accept = {"Accept-Patch": "application/json"} if request.method == "PATCH" else {}
        raise ApiError(
            415,
            "unsupported_media_type",
            f"{said}: a request body must be JSON (Content-Type: application/json)",
            headers=accept,
        )


def is_json_type(request: web.Request) -> bool:
    """Whether the request says its body is JSON (see :func:`check_body`)."""
    if "Content-Type" not in request.headers:
        return False
    kind = request.content_type  # lower case, parameters dropped
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def _unread_body(request: web.Request) -> bool:
    """Whether part of the request body has not even arrived yet."""
    return request.body_exists and not request.content.is_eof()


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    resp = await _handle(request, handler)
    # A body left unread is not read afterwards either (lingering_time 0 in the
    # app's handler arguments): the connection closes after this response, and
    # the response says so (RFC 9112 section 9.6).
    if not resp.prepared and _unread_body(request):
        resp.force_close()
    return resp


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        check_body(request)
        return await handler(request)
    except ApiError as exc:
        return _api_error(exc)
    except ServiceError as exc:
        return _api_error(service_error(exc))
    except StorageUnavailable as exc:
        return await _storage_refused(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _CODES.get(exc.status, "http_error")
        message = exc.reason if exc.status != 404 else f"no route {request.path[:200]}"
        if exc.status == 413:
            message = f"the body is over {MAX_BODY_BYTES} bytes"
        resp = error(exc.status, code, message)
        if exc.status == 405 and "Allow" in exc.headers:
            resp.headers["Allow"] = exc.headers["Allow"]
        return resp
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path[:200])
        return error(500, "internal", "internal error")


def _api_error(exc: ApiError) -> web.Response:
    resp = error(exc.status, exc.code, exc.message, **exc.extra)
    resp.headers.update(exc.headers)
    if exc.status == 429 and "retry_after_s" in exc.extra:
        resp.headers["Retry-After"] = str(exc.extra["retry_after_s"])
    return resp


# Seconds a client is asked to wait when the store's writes fail.
STORAGE_RETRY_AFTER_S = 30
user_key = web.RequestKey("user", User)  # the signed-in user, once current_user() found them


async def _storage_refused(request: web.Request, exc: StorageUnavailable) -> web.Response:
    """503 for a request the disk could not take; the refusal goes into the audit log.

    While the disk fails, the audit entry waits in memory and is written when
    it recovers (:class:`ivr.access.audit.AuditLog`); reads go on being served.
    """
    log.error("%s %s refused: %s", request.method, request.path[:200], exc)
    user = request.get(user_key)
    # If the audit's own backlog is full, the log line above is what remains.
    with contextlib.suppress(StorageUnavailable):
        await audit_of(request).record(
            user if isinstance(user, User) else None,
            "storage.refused",
            "failed",
            detail={"method": request.method, "path": request.path[:200]},
        )
    resp = error(
        503,
        "storage_unavailable",
        "the server cannot store this now (its disk is full or failing); try again later",
    )
    resp.headers["Retry-After"] = str(STORAGE_RETRY_AFTER_S)
    return resp


def store_of(request: web.Request) -> Store:

    return request.app[store_key]


def audit_of(request: web.Request) -> AuditLog:

    return request.app[audit_key]


def services_of(request: web.Request) -> Context:
    """What the use cases work with in the running app (:mod:`ivr.services`)."""
    app = request.app
    return Context(
        store=app[store_key],
        audit=app[audit_key],
        switchboard=app[switchboard_key],
        sessions=app[authenticator_key],
        hash_params=app[settings_key].hash_params,
    )


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    return header[7:].strip() or None


def authenticator_of(request: web.Request) -> Authenticator:

    return request.app[authenticator_key]


async def current_user(request: web.Request) -> User:
    token = bearer(request)
    if token is None:
        raise ApiError(401, "unauthorized", "missing bearer token")
    try:
        user = await authenticator_of(request).user(token)
    except AuthError as exc:
        raise ApiError(401, "unauthorized", str(exc)) from None
    request[user_key] = user
    return user


async def require(request: web.Request, action: Action) -> User:
    """The signed-in user, if their role may do ``action`` at all (else 401/403, audited)."""
    user = await current_user(request)
    if not permits(user, action):
        await audit_of(request).record(
            user, action, "refused", detail={"why": "role", "path": request.path[:200]}
        )
        raise ApiError(403, "forbidden", f"the {user.role} role may not do this ({action})")
    return user


async def refuse_object(
    request: web.Request, user: User, action: Action, object_type: str, object_id: str
) -> ApiError:
    """Audit a refusal of one object and return the 404 that hides it."""
    await audit_of(request).record(
        user,
        action,
        "refused",
        object_type=object_type,
        object_id=object_id[:64],
        detail={"why": "object"},
    )
    return ApiError(404, "not_found", f"no {object_type} {object_id[:64]}")


async def read_body(request: web.Request) -> bytes:
    """The whole body, at most ``MAX_BODY_BYTES`` (else 413, and the rest is not read).

    ``StreamReader.read(n)`` returns what has arrived so far, so a body that
    comes in several TCP segments is read in a loop until its end.
    """
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes")
    parts: list[bytes] = []
    size = 0
    while chunk := await request.content.read(MAX_BODY_BYTES + 1 - size):
        parts.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes")
    return b"".join(parts)


async def read_json(request: web.Request) -> dict[str, Any]:
    raw = await read_body(request)
    try:
        body = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(422, "invalid", "the body must be a JSON object", field="")
    return body


def problems_of(exc: ValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in err["loc"])
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        out.append({"path": field, "message": msg})
    return out


async def read_model(request: web.Request, model: type[M]) -> M:
    """The body validated by ``model``; 422 names the field at fault."""
    body = await read_json(request)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems = problems_of(exc)
        first = problems[0]
        raise ApiError(
            422,
            "invalid",
            f"{first['path'] or 'body'}: {first['message']}",
            field=first["path"],
            problems=problems,
        ) from None


def query_limit(request: web.Request, default: int = 50, most: int = 500) -> int:
    raw = request.query.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise ApiError(
            422, "invalid", f"'limit' must be a whole number from 1 to {most}", field="limit"
        )
    return int(raw)


def query_time(request: web.Request, name: str) -> str | None:
    """An ISO 8601 date or time from the query, normalised to the store's UTC form."""
    from datetime import UTC, datetime

    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            422, "invalid", f"'{name}' must be an ISO 8601 date or time", field=name
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_ok(data: Mapping[str, Any] | list[Any], status: int = 200) -> web.Response:
    return web.json_response(data, status=status)
