"""Checking the audit log: the whole hash chain walked, then its tail against the checkpoints."""

from __future__ import annotations

from pathlib import Path

from ivr.access.audit import CheckpointVerdict, Verdict, verify, verify_checkpoints
from ivr.access.checkpoint import public_key, read_checkpoints
from ivr.services.context import Context


async def verify_chain(ctx: Context) -> Verdict:
    """Walk the chain from the first entry; ``ok`` False names the first entry that breaks it."""
    return await verify(ctx.store)


async def check_checkpoints(ctx: Context, key_path: Path, file: Path) -> CheckpointVerdict:
    """The chain's tail against the newest checkpoint of ``file`` signed with the key."""
    public = public_key(key_path)
    return await verify_checkpoints(ctx.store, list(read_checkpoints(file, public)))
