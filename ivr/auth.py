"""Passwords and bearer tokens.

Passwords are hashed with argon2id (memory-hard), always off the event loop.
Tokens are opaque random strings; only their SHA-256 is stored, so a copy of
the database does not let anyone sign in. Neither ever reaches a log line.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

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


class Authenticator:
    """Logs users in and out and resolves bearer tokens."""

    def __init__(self, store: Store, params: HashParams) -> None:
        self._store = store
        self._params = params
        # A hash to verify against when the e-mail is unknown, so that timing
        # does not tell which e-mails exist.
        self._dummy: str | None = None

    async def login(self, email: str, password: str) -> tuple[str, User]:
        found = await self._store.user_credentials(email)
        if found is None:
            if self._dummy is None:
                self._dummy = await hash_password(secrets.token_hex(8), self._params)
            await verify_password(self._dummy, password, self._params)
            raise AuthError("wrong e-mail or password")
        user, stored = found
        if not await verify_password(stored, password, self._params):
            raise AuthError("wrong e-mail or password")
        token = secrets.token_urlsafe(32)
        expires = (datetime.now(UTC) + TOKEN_TTL).isoformat(timespec="milliseconds")
        await self._store.add_token(token_hash(token), user.id, expires.replace("+00:00", "Z"))
        return token, user

    async def user(self, token: str) -> User:
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        user = await self._store.user_for_token(token_hash(token), now)
        if user is None:
            raise AuthError("unknown or expired token")
        return user

    async def logout(self, token: str) -> None:
        await self._store.delete_token(token_hash(token))
