"""Retention: recordings (and their transcripts) deleted once past the number's days.

Each recording's ``expires_at`` is set when it is made, from the number's
``retention_days``; a change of a number's days applies to its existing
recordings too. The clock is a parameter, so tests move it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict
from datetime import datetime
from typing import Any

from ivr.stamp import expiry, iso, new_id
from ivr.store import RetentionRun, Store

log = logging.getLogger("ivr.privacy")


async def purge_expired(
    store: Store, now: datetime, requested_by: str | None = None
) -> dict[str, Any]:
    """Delete every finished recording whose retention has run out at ``now``."""
    expired = await store.privacy.expired(iso(now))
    for r in expired:
        with contextlib.suppress(Exception):
            store.recording_path(r.path).unlink(missing_ok=True)
    ids = [r.id for r in expired]
    # Crypto-shredding: copies of these files elsewhere (backups) are noise now.
    keys_destroyed = await asyncio.to_thread(
        lambda: store.recordings.shred(ids) + store.transcripts.shred(ids)
    )
    run = RetentionRun(
        id=new_id("t"),
        at=iso(now),
        requested_by=requested_by,
        recordings=len(ids),
        transcripts=await store.transcripts.count_of(ids),
        bytes=sum(r.size_bytes or 0 for r in expired),
    )
    # Another node purging at once may have taken some first: the receipt counts ours.
    run = await store.privacy.purge(run, ids)
    if run.recordings:
        log.info("retention: deleted %d recording(s)", run.recordings)
    return asdict(run) | {"data_keys_destroyed": keys_destroyed}


async def apply_retention(store: Store, number_id: str, retention_days: int) -> int:
    """A number's new ``retention_days`` applies to its existing recordings too."""
    started = await store.recordings.started_of_number(number_id)
    await store.recordings.set_expiries(
        [
            (rec_id, expiry(retention_days, datetime.fromisoformat(at.replace("Z", "+00:00"))))
            for rec_id, at in started
        ]
    )
    return len(started)
