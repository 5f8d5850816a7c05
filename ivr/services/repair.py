"""Start-up repair of what a crash (or SIGKILL) left behind.

Recordings still marked ``recording`` were cut off: their ``.partial`` file
is repaired (:func:`media.wavfile.repair_header`: at most the last, unwritten
block is lost), renamed to its final name and registered as ``interrupted``
with its real duration and checksum. Calls that never ended are closed with
reason ``error``. A ``.partial`` file with no row (the process died between
creating the file and saving its row) holds audio that nothing governs, so it
is deleted and the deletion logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field

from ivr.stamp import now_iso
from ivr.store import Store
from media.errors import AudioFileError
from media.wavfile import PARTIAL_SUFFIX, repair_header, sha256_file

log = logging.getLogger("ivr.repair")


@dataclass(slots=True)
class RepairReport:
    recordings: list[str] = field(default_factory=list)
    calls_closed: int = 0
    orphans_deleted: int = 0


async def repair(store: Store) -> RepairReport:
    report = RepairReport()
    async with store.db.execute(
        "SELECT id, path, sample_rate, channels FROM recordings WHERE status = 'recording'"
    ) as cur:
        rows = list(await cur.fetchall())
    known: set[str] = set()
    for row in rows:
        final = store.recording_path(row["path"])
        partial = final.with_name(final.name + PARTIAL_SUFFIX)
        known.add(str(partial))
        fields: dict[str, object] = {"status": "interrupted", "ended_at": now_iso()}
        try:
            if partial.exists():
                frames = await asyncio.to_thread(repair_header, partial)
                os.replace(partial, final)
            elif final.exists():
                frames = await asyncio.to_thread(repair_header, final)
            else:
                frames = 0
            if final.exists():
                fields.update(
                    duration_s=frames / row["sample_rate"],
                    sha256=await asyncio.to_thread(sha256_file, final),
                    size_bytes=final.stat().st_size,
                )
        except (AudioFileError, OSError) as exc:
            log.error("recording %s could not be repaired: %s", row["id"], exc)
        await store.finish_recording(row["id"], **fields)
        report.recordings.append(row["id"])
        log.warning("recording %s was cut off; repaired and marked interrupted", row["id"])
    for partial in store.recordings_dir.rglob(f"*{PARTIAL_SUFFIX}"):
        if str(partial) not in known:
            partial.unlink(missing_ok=True)
            report.orphans_deleted += 1
            log.warning("deleted %s: a partial recording with no row", partial.name)
    async with store.transaction() as db:
        cur2 = await db.execute(
            "UPDATE calls SET ended_at = ?, end_reason = 'error' WHERE ended_at IS NULL",
            (now_iso(),),
        )
    report.calls_closed = cur2.rowcount
    return report
