"""Start-up repair of what a crash (or SIGKILL) left behind.

Recordings still marked ``recording`` were cut off: their ``.partial`` file
is repaired (:func:`media.wavfile.repair_header`, or for a sealed file
:func:`media.sealed.repair_sealed`: at most the last, unwritten block is
lost), renamed to its final name and registered as ``interrupted`` with its
real duration and checksum. Calls that never ended are closed with
reason ``error``. On a store shared by several nodes, a node repairs only
its own calls and recordings (``Store.node_id``), and those from before
nodes had ids. A ``.partial`` file with no row (the process died between
creating the file and saving its row) holds audio that nothing governs, so it
is deleted and the deletion logged, once it has not been written to for
``ORPHAN_AGE_S`` (a live node's file whose row is not saved yet is written
to every second).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ivr.stamp import now_iso
from ivr.store import RecordingEnd, Store
from ivr.store.keyring import KeyDestroyed
from media.errors import AudioFileError
from media.sealed import SealedAudio, repair_sealed
from media.wavfile import PARTIAL_SUFFIX, repair_header, sha256_file

log = logging.getLogger("ivr.repair")


ORPHAN_AGE_S = 60.0  # a partial file with no row, untouched this long, is an orphan


def _partial(store: Store, relative: str) -> Path:
    final = store.recording_path(relative)
    return final.with_name(final.name + PARTIAL_SUFFIX)


@dataclass(slots=True)
class RepairReport:
    """What a start-up repair found: recordings repaired, calls closed, orphans deleted."""

    recordings: list[str] = field(default_factory=list)
    calls_closed: int = 0
    orphans_deleted: int = 0


def _repair_file(store: Store, path: Path) -> tuple[int, str, int]:
    """Cut a cut-off file to its whole frames (a clear WAV) or chunks (sealed).

    Returns the frames it holds, and the SHA-256 and size of its plain WAV.
    """
    key = store.file_key(path)
    if key is None:
        frames = repair_header(path)
        return frames, sha256_file(path), path.stat().st_size
    frames = repair_sealed(path, key)
    with SealedAudio(path, key) as audio:
        return frames, audio.sha256(), audio.size


async def repair(store: Store) -> RepairReport:
    """Repair what a crash left: cut-off recordings, unended calls, orphan files."""
    report = RepairReport()
    # Every recording still being written, by any node: none of their files is an orphan.
    known = {str(_partial(store, rec.path)) for rec in await store.recordings.unfinished()}
    # Another node still alive holds its calls; a dead one's (or this node's, from
    # before its restart) are repaired here.
    spare = await store.nodes.others_alive(store.node_id, now_iso())
    for rec in await store.recordings.unfinished(spare):
        final = store.recording_path(rec.path)
        partial = _partial(store, rec.path)
        end: RecordingEnd = {"status": "interrupted", "ended_at": now_iso()}
        try:
            found = partial if partial.exists() else final if final.exists() else None
            if found is not None:
                frames, digest, size = await asyncio.to_thread(_repair_file, store, found)
                if found is partial:
                    os.replace(partial, final)
                duration = frames / rec.sample_rate
                end |= {"duration_s": duration, "sha256": digest, "size_bytes": size}
        except KeyDestroyed:
            # Erased (or its key lost) while it was written: noise to anyone. Delete it.
            for f in (partial, final):
                f.unlink(missing_ok=True)
            log.error("recording %s has no data key: its file is deleted", rec.id)
        except (AudioFileError, OSError) as exc:
            log.error("recording %s could not be repaired: %s", rec.id, exc)
        await store.recordings.finish(rec.id, **end)
        report.recordings.append(rec.id)
        log.warning("recording %s was cut off; repaired and marked interrupted", rec.id)
    now = time.time()
    for partial in store.recordings_dir.rglob(f"*{PARTIAL_SUFFIX}"):
        if str(partial) in known:
            continue
        try:
            fresh = now - partial.stat().st_mtime < ORPHAN_AGE_S
        except FileNotFoundError:
            continue
        if fresh:
            # Written to lately: another node's, whose row is not saved yet. A
            # real orphan (a crash) stops changing, and goes at a later start.
            log.info("kept %s: no row yet, but written to lately", partial.name)
            continue
        partial.unlink(missing_ok=True)
        report.orphans_deleted += 1
        log.warning("deleted %s: a partial recording with no row", partial.name)
    report.calls_closed = await store.calls.close_unended(now_iso(), spare)
    return report
