"""Users, their teams and their bearer tokens (stored as SHA-256 hashes only)."""

from __future__ import annotations

from collections.abc import Iterable

from ivr.errors import NotFound, StoreError
from ivr.stamp import new_id, now_iso
from ivr.store import dialect
from ivr.store.base import Repository, Row
from ivr.store.rows import Credentials, Role, TokenSession, User

_USER_TEAM = dialect.insert("user_teams", ("user_id", "team"))


class UserRepository(Repository):
    """``users``, ``user_teams`` and ``tokens``: a new role or password signs a user out."""

    async def add(
        self, email: str, name: str, role: Role, password_hash: str, teams: Iterable[str] = ()
    ) -> User:
        """A new user; :class:`StoreError` if the e-mail is taken (in any case)."""
        user_id = new_id("u")
        team_list = tuple(dict.fromkeys(teams))
        try:
            async with self._db.transaction() as db:
                await db.execute(
                    dialect.insert(
                        "users", ("id", "email", "name", "role", "password_hash", "created_at")
                    ),
                    (user_id, email, name, role, password_hash, now_iso()),
                )
                await db.executemany(_USER_TEAM, [(user_id, t) for t in team_list])
        except self._db.dialect.integrity_failures as exc:
            raise StoreError(f"a user with e-mail {email} already exists") from exc
        return User(user_id, email, name, role, team_list)

    async def _user(self, row: Row | None) -> User | None:
        if row is None:
            return None
        teams = await self._db.all(
            "SELECT team FROM user_teams WHERE user_id = ? ORDER BY team", (row["id"],)
        )
        return User(
            row["id"], row["email"], row["name"], row["role"], tuple(t["team"] for t in teams)
        )

    async def get(self, user_id: str) -> User | None:
        """The user with this id, or None."""
        return await self._user(await self._db.one("SELECT * FROM users WHERE id = ?", (user_id,)))

    async def credentials(self, email: str) -> Credentials | None:
        """The user with this e-mail (in any case) and their password hash, or None."""
        row = await self._db.one("SELECT * FROM users WHERE email = ?", (email,))
        user = await self._user(row)
        if user is None or row is None:
            return None
        return Credentials(user, str(row["password_hash"]))

    async def update(
        self,
        user_id: str,
        *,
        name: str | None = None,
        role: Role | None = None,
        teams: Iterable[str] | None = None,
        password_hash: str | None = None,
    ) -> User:
        """Change what is given (None: left as it is); a new role or password ends every token."""
        sets = {
            k: v
            for k, v in (("name", name), ("role", role), ("password_hash", password_hash))
            if v is not None
        }
        async with self._db.transaction() as db:
            if sets:
                await db.execute(
                    f"UPDATE users SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
                    (*sets.values(), user_id),
                )
            if teams is not None:
                await db.execute("DELETE FROM user_teams WHERE user_id = ?", (user_id,))
                await db.executemany(_USER_TEAM, [(user_id, t) for t in dict.fromkeys(teams)])
            if password_hash is not None or role is not None:
                # A new password or role signs the user out everywhere.
                await db.execute("DELETE FROM tokens WHERE user_id = ?", (user_id,))
        user = await self.get(user_id)
        if user is None:
            raise NotFound(f"no user {user_id}")
        return user

    async def delete(self, user_id: str) -> None:
        """Delete the user; their teams and tokens go with them (ON DELETE CASCADE)."""
        await self._db.write("DELETE FROM users WHERE id = ?", (user_id,))

    async def all(self) -> list[User]:
        """Every user, by e-mail."""
        rows = await self._db.all("SELECT * FROM users ORDER BY email")
        return [u for r in rows if (u := await self._user(r)) is not None]

    # -- tokens ----------------------------------------------------------------------

    async def add_token(self, token_hash: str, user_id: str, expires_at: str) -> None:
        """Keep a new token's hash until ``expires_at``."""
        await self._db.write(
            dialect.insert("tokens", ("token_hash", "user_id", "created_at", "expires_at")),
            (token_hash, user_id, now_iso(), expires_at),
        )

    async def session(self, token_hash: str, now: str) -> TokenSession | None:
        """The user of a token unexpired at ``now``, and when the token expires."""
        row = await self._db.one(
            "SELECT u.*, t.expires_at AS token_expires_at FROM tokens t "
            "JOIN users u ON u.id = t.user_id WHERE t.token_hash = ? AND t.expires_at > ?",
            (token_hash, now),
        )
        user = await self._user(row)
        if user is None or row is None:
            return None
        return TokenSession(user, str(row["token_expires_at"]))

    async def delete_token(self, token_hash: str) -> None:
        """Forget a token (a logout)."""
        await self._db.write("DELETE FROM tokens WHERE token_hash = ?", (token_hash,))
