"""Users: add, change, delete, with the Owner rules, ended sessions and the audit entry.

Only an Owner grants, changes or removes the Owner role, and nobody changes
their own role (:func:`ivr.access.policy.permits`); a refusal is audited.
``actor`` None is the ``ivr users add`` command, which makes the first
Owner: it is trusted and, as documented, not audited.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from ivr.access.auth import hash_password
from ivr.access.policy import permits
from ivr.errors import StoreError
from ivr.services.context import Context
from ivr.services.errors import Conflict, Forbidden, Missing
from ivr.store import Role, User


async def _check_manage(
    ctx: Context, actor: User, target: User | None, new_role: Role | None, what: str
) -> None:
    obj = {
        "target_id": target.id if target else None,
        "target_role": target.role if target else None,
        "new_role": new_role,
    }
    if permits(actor, "users.write", obj):
        return
    await ctx.audited(
        actor,
        f"users.{what}",
        "refused",
        object_type="user",
        object_id=target.id if target else None,
        detail={"new_role": new_role},
    )
    if target is not None and target.id == actor.id:
        raise Forbidden("you cannot change your own role")
    raise Forbidden("only an Owner grants, changes or removes the Owner role")


async def _target(ctx: Context, user_id: str) -> User:
    target = await ctx.store.users.get(user_id)
    if target is None:
        raise Missing(f"no user {user_id[:64]}")
    return target


async def add_user(
    ctx: Context,
    actor: User | None,
    *,
    email: str,
    name: str,
    role: Role,
    password: str,
    teams: Iterable[str] = (),
) -> User:
    """A new user; :class:`Conflict` if the e-mail is taken (in any case)."""
    if actor is not None:
        await _check_manage(ctx, actor, None, role, "create")
    hashed = await hash_password(password, ctx.hash_params)
    try:
        user = await ctx.store.users.add(email, name, role, hashed, teams)
    except StoreError as exc:
        raise Conflict(str(exc)) from None
    if actor is not None:
        await ctx.audited(
            actor,
            "users.create",
            "ok",
            object_type="user",
            object_id=user.id,
            detail={"role": user.role},
        )
    return user


async def change_user(
    ctx: Context,
    actor: User,
    user_id: str,
    *,
    name: str | None = None,
    role: Role | None = None,
    teams: Iterable[str] | None = None,
    password: str | None = None,
    fields: Collection[str] = (),
) -> User:
    """Change what is given (None: kept); a new role or password ends every session.

    ``fields``: the fields the request named, for the audit entry.
    """
    target = await _target(ctx, user_id)
    await _check_manage(ctx, actor, target, role, "update")
    hashed = await hash_password(password, ctx.hash_params) if password else None
    user = await ctx.store.users.update(
        target.id, name=name, role=role, teams=teams, password_hash=hashed
    )
    if role is not None or password is not None:
        # The store deleted every token of the user: their live seats end too.
        ctx.sessions_ended(user.id, "the session was revoked: the user's role or password changed")
    elif (name is not None or teams is not None) and ctx.sessions is not None:
        ctx.sessions.user_changed(user)
    await ctx.audited(
        actor,
        "users.update",
        "ok",
        object_type="user",
        object_id=user.id,
        detail={"fields": sorted(fields)},
    )
    return user


async def delete_user(ctx: Context, actor: User, user_id: str) -> None:
    """Delete a user (never oneself); their tokens and live seats end with them."""
    target = await _target(ctx, user_id)
    await _check_manage(ctx, actor, target, None, "delete")
    if target.id == actor.id:
        raise Conflict("you cannot delete yourself")
    await ctx.store.users.delete(target.id)
    ctx.sessions_ended(target.id, "the session was ended: the user was deleted")
    await ctx.audited(actor, "users.delete", "ok", object_type="user", object_id=target.id)
