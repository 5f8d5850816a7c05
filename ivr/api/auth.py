"""``/v1/auth/login``, ``/v1/auth/logout``, ``/v1/me``."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ivr.api.base import (
    ApiError,
    Route,
    audit_of,
    authenticator_of,
    bearer,
    read_model,
    require,
)
from ivr.errors import AuthError
from ivr.server.keys import limiter_key


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


async def login(request: web.Request) -> web.Response:

    body = await read_model(request, LoginBody)
    limiter = request.app[limiter_key]
    email_key = "email:" + body.email.lower()
    addr_key = "addr:" + (request.remote or "?")
    # Counted before the password is checked, in the same step as the limit
    # check (docs/access.md, the login limit): concurrent guesses cannot all
    # slip under the limit while the first ones are still being verified.
    attempt = limiter.begin(email_key, addr_key)
    audit = audit_of(request)
    if attempt.retry_after_s:
        wait = attempt.retry_after_s
        await audit.record(None, "auth.login", "refused", detail={"why": "rate limited"})
        raise ApiError(
            429,
            "too_many_attempts",
            f"too many failed logins; try again in {wait} s",
            retry_after_s=wait,
        )
    try:
        token, user = await authenticator_of(request).login(body.email, body.password)
    except AuthError as exc:
        # The attempt stays counted: it is a failure.
        await audit.record(None, "auth.login", "failed", detail={"why": "bad credentials"})
        raise ApiError(401, "unauthorized", str(exc)) from None
    except BaseException:
        limiter.abandoned(attempt)
        raise
    limiter.succeeded(attempt, clear=email_key)
    await audit.record(user, "auth.login", "ok", object_type="user", object_id=user.id)
    return web.json_response({"token": token, "user": user.public()})


async def logout(request: web.Request) -> web.Response:
    user = await require(request, "session")
    token = bearer(request)
    assert token is not None
    await authenticator_of(request).logout(token)  # ends the seats signed in with it too
    await audit_of(request).record(user, "auth.logout", "ok", object_type="user", object_id=user.id)
    return web.Response(status=204)


async def me(request: web.Request) -> web.Response:
    user = await require(request, "session")
    return web.json_response(user.public())


ROUTES: list[Route] = [
    ("POST", "/v1/auth/login", login),
    ("POST", "/v1/auth/logout", logout),
    ("GET", "/v1/me", me),
]
