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
from ivr.store import RecordingEnd, Store
from media.errors import AudioFileError
from media.wavfile import PARTIAL_SUFFIX, repair_header, sha256_file

log = logging.getLogger("ivr.repair")


@dataclass(slots=True)
class RepairReport:
    """What a start-up repair found: recordings repaired, calls closed, orphans deleted."""

    recordings: list[str] = field(default_factory=list)
    calls_closed: int = 0
    orphans_deleted: int = 0


async def repair(store: Store) -> RepairReport:
    """Repair what a crash left: cut-off recordings, unended calls, orphan files."""
    report = RepairReport()
    known: set[str] = set()
    for rec in await store.recordings.unfinished():
        final = store.recording_path(rec.path)
        partial = final.with_name(final.name + PARTIAL_SUFFIX)
        known.add(str(partial))
        end: RecordingEnd = {"status": "interrupted", "ended_at": now_iso()}
        try:
            if partial.exists():
                frames = await asyncio.to_thread(repair_header, partial)
                os.replace(partial, final)
            elif final.exists():
                frames = await asyncio.to_thread(repair_header, final)
            else:
                frames = 0
            if final.exists():
                digest = await asyncio.to_thread(sha256_file, final)
                size = final.stat().st_size
                duration = frames / rec.sample_rate
                end |= {"duration_s": duration, "sha256": digest, "size_bytes": size}
        except (AudioFileError, OSError) as exc:
            log.error("recording %s could not be repaired: %s", rec.id, exc)
        await store.recordings.finish(rec.id, **end)
        report.recordings.append(rec.id)
        log.warning("recording %s was cut off; repaired and marked interrupted", rec.id)
    for partial in store.recordings_dir.rglob(f"*{PARTIAL_SUFFIX}"):
        if str(partial) not in known:
            partial.unlink(missing_ok=True)
            report.orphans_deleted += 1
            log.warning("deleted %s: a partial recording with no row", partial.name)
    report.calls_closed = await store.calls.close_unended(now_iso())
    return report
