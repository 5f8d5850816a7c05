"""Erasure, access export and retention runs, for the API and the CLI alike.

The operations themselves (what is deleted, what goes in the ZIP) are
:mod:`ivr.privacy`'s; these use cases add who may ask: an Agent exports
only their own data, only an Owner erases an Owner, nobody erases
themselves. ``actor`` None is the ``ivr`` command: trusted, recorded as
``cli`` in receipts, and not audited (see :mod:`ivr.services.context`).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ivr import privacy
from ivr.access.policy import permits
from ivr.e164 import contact_number
from ivr.errors import StorageUnavailable
from ivr.privacy.redact import mask_number
from ivr.privacy.subject import pseudonym
from ivr.services.context import CLI, Context
from ivr.services.errors import Conflict, Forbidden, Invalid, Missing
from ivr.stamp import new_id, now_iso
from ivr.store import Kind, User


@dataclass(frozen=True, slots=True)
class Export:
    """A written access export: the ZIP and its manifest."""

    path: Path
    manifest: dict[str, Any]


def _label(kind: Kind, value: str) -> str:
    """A subject as the audit log may name it: a number masked, an agent's id."""
    return mask_number(value) if kind == "contact" else value


async def agent_subject(ctx: Context, email: str) -> str:
    """The user id of the agent with this e-mail; :class:`Missing` if there is none."""
    found = await ctx.store.users.credentials(email)
    if found is None:
        raise Missing("no user with that e-mail")
    return found.user.id


async def erase(ctx: Context, actor: User | None, kind: Kind, subject: str) -> dict[str, Any]:
    """Erase a contact (E.164 number) or an agent (user id); returns the receipt."""
    if kind == "agent" and actor is not None:
        target = await ctx.store.users.get(subject)
        if target is None:
            raise Missing("no such agent")
        if target.role == "owner" and actor.role != "owner":
            raise Forbidden("only an Owner erases an Owner")
        if target.id == actor.id:
            raise Conflict("you cannot erase yourself")
    try:
        live = await _stop_live_recordings(ctx, kind, subject)
        receipt = await privacy.erase(
            ctx.store, kind, subject, actor.id if actor else CLI, live_stopped=live
        )
    except privacy.SubjectNotFound:
        raise Missing(f"no such {kind}") from None
    except privacy.LiveElsewhere as exc:
        raise Conflict(str(exc)) from None
    finally:
        if ctx.switchboard is not None and kind == "contact":
            # The block is in the store now (or the erasure failed and will be retried).
            with contextlib.suppress(ValueError):
                ctx.switchboard.objected.discard(contact_number(subject))
    if kind == "agent":  # the user is gone, and with them every session
        ctx.sessions_ended(subject, "the session was ended: the user was erased")
    await ctx.audited(
        actor,
        f"privacy.erase_{kind}",
        "ok",
        object_type="erasure",
        object_id=receipt["id"],
        detail={"erased": receipt["erased"]},
    )
    return receipt


LIVE_SAVE_WAIT_S = 30.0
OBJECTION = "the subject was erased during the call: recording stopped, and blocked"


async def _stop_live_recordings(ctx: Context, kind: Kind, subject: str) -> int:
    """Stop every live call's recording of the subject, and wait until what they wrote is saved.

    So the erasure that follows finds each file closed and each row written,
    and deletes them for good (not a ``.partial`` file its writer renames
    back a moment later). The calls go on, unrecorded; the caller sees
    ``recording`` ``off``. Calls that have just ended are waited for too,
    and an erased agent's name in events not yet saved is replaced by their
    pseudonym. Returns how many recordings were stopped. Only this process's
    calls: the ``ivr`` command (no switchboard) and other nodes' calls are
    not reached (docs/privacy.md); a contact's block reaches later calls on
    every node.
    """
    sb = ctx.switchboard
    if sb is None:
        return 0
    if kind == "contact":
        with contextlib.suppress(ValueError):
            subject = contact_number(subject)
        # First, with no await before the look below: a call placed from now on
        # sees the objection (place_call), one placed before is in the list.
        sb.objected.add(subject)
        mine = [s for s in sb.unsaved_calls() if s.caller_number == subject]
    else:
        mine = [
            s
            for s in sb.unsaved_calls()
            if s.seat is not None and getattr(s.seat, "user_id", None) == subject
        ]
        user = await ctx.store.users.get(subject)
        if user is not None:
            ps = pseudonym(ctx.store, "agent", subject)
            for s in mine:
                s.rename_agent(user.name, ps)
    live = [s for s in mine if not s.ended]
    stopped = sum(1 for s in live if s.recording is not None)
    marks = [s.block_recording(OBJECTION) for s in live]
    waits = [m.wait() for m in marks] + [s.journal.saved.wait() for s in mine if s.ended]
    if waits:
        try:
            async with asyncio.timeout(LIVE_SAVE_WAIT_S):
                await asyncio.gather(*waits)
        except TimeoutError:
            raise StorageUnavailable(
                "a live call's recording could not be saved and closed (the store is failing): "
                "try the erasure again"
            ) from None
    return stopped


async def export(
    ctx: Context,
    actor: User | None,
    kind: Kind,
    subject: str,
    *,
    since: str | None = None,
    until: str | None = None,
    out: Path | None = None,
) -> Export:
    """Write the subject's access export (default window: the last six months).

    ``out`` None: a new file under ``<data>/exports/``, for the caller to
    send and delete.
    """
    # An Agent exports only their own data: never a contact, never another agent.
    if actor is not None and not permits(
        actor, "privacy.export", {"agent_id": subject if kind == "agent" else None}
    ):
        await ctx.audited(
            actor, "privacy.export", "refused", object_type=kind, detail={"why": "own data only"}
        )
        raise Forbidden("an Agent may export only their own data")
    default_since, default_until = privacy.default_window()
    since, until = since or default_since, until or default_until
    if since >= until:
        raise Invalid("since must be before until", field="since")
    if out is None:
        folder = ctx.store.data_dir / "exports"
        folder.mkdir(exist_ok=True)
        out = folder / f"{new_id('x')}.zip"
    manifest = await privacy.export(
        ctx.store, privacy.ExportRequest(kind, subject, since, until), out
    )
    await ctx.audited(
        actor,
        "privacy.export",
        "ok",
        object_type=kind,
        object_id=_label(kind, subject),
        detail={"counts": manifest["counts"]},
    )
    return Export(out, manifest)


async def purge(ctx: Context, actor: User | None, now: datetime | None = None) -> dict[str, Any]:
    """Delete every recording past its retention now; returns the run's receipt."""
    receipt = await privacy.purge_expired(
        ctx.store, now or datetime.now(UTC), actor.id if actor else CLI
    )
    await ctx.audited(
        actor,
        "privacy.retention",
        "ok",
        object_type="retention",
        object_id=receipt["id"],
        detail={"recordings": receipt["recordings"]},
    )
    return receipt


async def blocks(ctx: Context, actor: User | None) -> list[dict[str, Any]]:
    """Every recording block (callers who objected), newest first: pseudonyms, never numbers."""
    found = await ctx.store.privacy.blocks()
    await ctx.audited(
        actor, "privacy.blocks", "ok", object_type="block", detail={"count": len(found)}
    )
    return found


async def lift_block(ctx: Context, actor: User | None, contact: str) -> dict[str, Any]:
    """Let this caller be recorded again (they withdrew their objection); Missing if not blocked."""
    try:
        number = contact_number(contact)
    except ValueError:
        raise Invalid("contact: must be an E.164 number like +15550100") from None
    ps = pseudonym(ctx.store, "contact", number)
    at = now_iso()
    if not await ctx.store.privacy.lift_block(ps, actor.id if actor else CLI, at):
        raise Missing("no recording block is in force for that number")
    await ctx.audited(actor, "privacy.unblock", "ok", object_type="block", object_id=ps)
    return {"pseudonym": ps, "lifted_at": at}
