"""Checking the audit log: the whole hash chain walked, the first broken link named."""

from __future__ import annotations

from ivr.access.audit import Verdict, verify
from ivr.services.context import Context


async def verify_chain(ctx: Context) -> Verdict:
    """Walk the chain from the first entry; ``ok`` False names the first entry that breaks it."""
    return await verify(ctx.store)
