"""Passwords and bearer tokens.

Passwords are hashed with argon2id (memory-hard), always off the event loop.
Tokens are opaque random strings; only their SHA-256 is stored, so a copy of
the database does not let anyone sign in. Neither ever reaches a log line.

A session ends for the live agent seats too: the :class:`Authenticator` is
given the switchboard's seats (:class:`Seats`) at start-up and ends the seats
of a token it signs out, or of a user who lost every session.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ivr.errors import AuthError
from ivr.store import Store, User

TOKEN_TTL = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class HashParams:
    """argon2id cost. The defaults are argon2-cffi's; tests use cheap ones."""

    time_cost: int = 3
    memory_cost: int = 65536
    parallelism: int = 4

    def hasher(self) -> PasswordHasher:
        return PasswordHasher(
            time_cost=self.time_cost, memory_cost=self.memory_cost, parallelism=self.parallelism
        )


CHEAP = HashParams(time_cost=1, memory_cost=1024, parallelism=1)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def generate_password() -> str:
    return secrets.token_urlsafe(12)


async def hash_password(password: str, params: HashParams) -> str:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, params.hasher().hash, password)


async def verify_password(password_hash: str, password: str, params: HashParams) -> bool:
    def check() -> bool:
        try:
            return bool(params.hasher().verify(password_hash, password))
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.get_running_loop().run_in_executor(None, check)


@dataclass(frozen=True, slots=True)
class Session:
    """A valid token's user, the token's hash (what the store keys it by) and its expiry."""

    user: User
    token_hash: str
    expires_at: datetime


class Seats(Protocol):
    """The live agent seats (the switchboard): what ends or updates them."""

    def end_seats(
        self, *, why: str, user_id: str | None = None, token_hash: str | None = None
    ) -> int:
        """End the seats of a user or of one token (``unauthorized``, close 1008)."""

    def update_seats(self, user: User) -> int:
        """Give the user's seats their new name and teams."""


class Authenticator:
    """Logs users in and out and resolves bearer tokens.

    ``seats``, when given, are the live agent seats: a session that ends here
    (logout, or every session of a user) ends the seats signed in with it.

    A login for an unknown e-mail is checked against a dummy hash, so that
    its time does not tell which e-mails exist. That hash is made once, when
    the authenticator is made (:meth:`create`, off the event loop), with the
    same cost as real ones: every unknown-e-mail login, the first included,
    costs one verify, as a known e-mail's does. (Made lazily, the first one
    also paid for a hash, and was measurably slower.)
    """

    def __init__(
        self, store: Store, params: HashParams, dummy_hash: str, seats: Seats | None = None
    ) -> None:
        self._store = store
        self._params = params
        self.dummy_hash = dummy_hash
        self._seats = seats

    @classmethod
    async def create(
        cls, store: Store, params: HashParams, seats: Seats | None = None
    ) -> Authenticator:
        """An authenticator with its dummy hash ready (hashed in a worker thread)."""
        return cls(store, params, await hash_password(secrets.token_hex(16), params), seats)

    async def login(self, email: str, password: str) -> tuple[str, User]:
        found = await self._store.users.credentials(email)
        if found is None:
            await verify_password(self.dummy_hash, password, self._params)
            raise AuthError("wrong e-mail or password")
        user = found.user
        if not await verify_password(found.password_hash, password, self._params):
            raise AuthError("wrong e-mail or password")
        token = secrets.token_urlsafe(32)
        expires = (datetime.now(UTC) + TOKEN_TTL).isoformat(timespec="milliseconds")
        await self._store.users.add_token(
            token_hash(token), user.id, expires.replace("+00:00", "Z")
        )
        return token, user

    async def user(self, token: str) -> User:
        return (await self.session(token)).user

    async def session(self, token: str) -> Session:
        """The session of a valid token; :class:`AuthError` if it is unknown or expired."""
        hashed = token_hash(token)
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        found = await self._store.users.session(hashed, now)
        if found is None:
            raise AuthError("unknown or expired token")
        expires_at = datetime.fromisoformat(found.expires_at.replace("Z", "+00:00"))
        return Session(found.user, hashed, expires_at)

    async def logout(self, token: str) -> None:
        """Delete the token, and end the agent seats signed in with it."""
        hashed = token_hash(token)
        await self._store.users.delete_token(hashed)
        if self._seats is not None:
            self._seats.end_seats(token_hash=hashed, why="the session was revoked: signed out")

    def sessions_ended(self, user_id: str, why: str) -> int:
        """The user has no session left (deleted, erased, new role or password).

        The store has deleted their tokens already; this ends their live seats.
        """
        return 0 if self._seats is None else self._seats.end_seats(user_id=user_id, why=why)

    def user_changed(self, user: User) -> int:
        """The user's name or teams changed: their live seats follow at once."""
        return 0 if self._seats is None else self._seats.update_seats(user)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One login attempt, as :meth:`LoginLimiter.begin` answered it.

    ``retry_after_s > 0``: refused, and nothing was counted. Otherwise the
    attempt is already counted as a failure against each of ``keys``, from
    before the password is checked, until :meth:`LoginLimiter.succeeded` or
    :meth:`LoginLimiter.abandoned` gives it back.
    """

    keys: tuple[str, ...]
    at: float
    retry_after_s: int = 0


class LoginLimiter:
    """Refuses logins for an account or an address after repeated failures.

    ``limit`` failures within ``window_s`` lock that key until the oldest of
    them leaves the window. Counted per e-mail and per client address, so
    neither guessing one account from many addresses nor many accounts from
    one address gets far.

    An attempt counts from the moment it starts, before its password is
    checked (which takes a thread and an await). Checking the limit and
    counting the attempt happen in one synchronous step, so concurrent
    guesses cannot all pass the check before the first failure is counted:
    at most ``limit`` attempts are ever judged per window, however many
    arrive at once. A success gives its own attempt back.
    """

    def __init__(
        self, limit: int = 5, window_s: float = 900.0, now: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._now = now
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        cutoff = self._now() - self.window_s
        while q and q[0] <= cutoff:
            q.popleft()
        return q

    def retry_after_s(self, *keys: str) -> int:
        """0 if a login may be tried now, else the seconds to wait."""
        wait = 0.0
        for key in keys:
            q = self._recent(key)
            if len(q) >= self.limit:
                wait = max(wait, q[0] + self.window_s - self._now())
        return int(wait) + 1 if wait > 0 else 0

    def begin(self, *keys: str) -> Attempt:
        """Check the limit for ``keys`` and, if it allows, count one attempt against each.

        No await may come between the check and the count: this method is
        synchronous, so on one event loop no other attempt runs in between.
        A refused attempt (``retry_after_s > 0``) is not counted.
        """
        now = self._now()
        wait = self.retry_after_s(*keys)
        if wait:
            return Attempt(keys, now, wait)
        for key in keys:
            self._recent(key).append(now)
        return Attempt(keys, now)

    def _give_back(self, attempt: Attempt, key: str) -> None:
        q = self._failures.get(key)
        if q is not None and attempt.at in q:
            q.remove(attempt.at)  # equal stamps are interchangeable

    def succeeded(self, attempt: Attempt, clear: str) -> None:
        """The attempt signed in: it was no failure, and ``clear`` (the account) starts afresh.

        The other keys (the address) keep their earlier failures.
        """
        for key in attempt.keys:
            self._give_back(attempt, key)
        self._failures.pop(clear, None)

    def abandoned(self, attempt: Attempt) -> None:
        """The attempt ended without a verdict on the password (a server error)."""
        for key in attempt.keys:
            self._give_back(attempt, key)
