"""Retention: recordings (and their transcripts) deleted once past the number's days.

Each recording's ``expires_at`` is set when it is made, from the number's
``retention_days``; a change of a number's days applies to its existing
recordings too. The clock is a parameter, so tests move it.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime
from typing import Any

from ivr.privacy.subject import count_transcripts, delete_transcripts
from ivr.stamp import expiry, iso, new_id
from ivr.store import Store

log = logging.getLogger("ivr.privacy")


async def purge_expired(
    store: Store, now: datetime, requested_by: str | None = None
) -> dict[str, Any]:
    """Delete every finished recording whose retention has run out at ``now``."""
    async with store.db.execute(
        "SELECT id, path, size_bytes FROM recordings WHERE status != 'recording' "
        "AND expires_at IS NOT NULL AND expires_at <= ?",
        (iso(now),),
    ) as cur:
        rows = [dict(r) for r in await cur.fetchall()]
    for r in rows:
        with contextlib.suppress(Exception):
            store.recording_path(r["path"]).unlink(missing_ok=True)
    ids = [r["id"] for r in rows]
    transcripts = await count_transcripts(store, ids)
    receipt = {
        "id": new_id("t"),
        "at": iso(now),
        "requested_by": requested_by,
        "recordings": len(ids),
        "transcripts": transcripts,
        "bytes": sum(r["size_bytes"] or 0 for r in rows),
    }
    async with store.transaction() as db:
        if ids:
            await delete_transcripts(store, ids)
            await db.execute(
                f"DELETE FROM recordings WHERE id IN ({','.join('?' * len(ids))})", ids
            )
        await db.execute(
            "INSERT INTO retention_runs (id, at, requested_by, recordings, transcripts, bytes) "
            "VALUES (:id, :at, :requested_by, :recordings, :transcripts, :bytes)",
            receipt,
        )
    if ids:
        log.info("retention: deleted %d recording(s)", len(ids))
    return receipt


async def apply_retention(store: Store, number_id: str, retention_days: int) -> int:
    """A number's new ``retention_days`` applies to its existing recordings too."""
    async with store.db.execute(
        "SELECT r.id, r.started_at FROM recordings r JOIN calls c ON c.id = r.call_id "
        "WHERE c.number = ?",
        (number_id,),
    ) as cur:
        rows = list(await cur.fetchall())
    async with store.transaction() as db:
        for r in rows:
            started = datetime.fromisoformat(r["started_at"].replace("Z", "+00:00"))
            await db.execute(
                "UPDATE recordings SET expires_at = ? WHERE id = ?",
                (expiry(retention_days, started), r["id"]),
            )
    return len(rows)
