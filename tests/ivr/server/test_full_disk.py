"""A disk that fills up under a running server: errors someone sees, never silent loss.

The data folder is a real tmpfs of a few MiB (``tests.disk``), filled with a
filler file while calls run and freed again, so the server meets ENOSPC
from the kernel and SQLITE_FULL from SQLite, and recovers without a restart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from ivr.access.audit import verify
from ivr.server.keys import audit_key, store_key
from media.wavfile import WAV_HEADER_BYTES
from tests.conftest import AppFactory, Caller, add_user, noise_frames
from tests.disk import fill, free, small_tmpfs
from tests.threaded_caller import ThreadedCaller
from tests.timeline import assert_on_timeline, caller_channel

Client = TestClient[web.Request, web.Application]


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    # Listed before the app in each test, so it is unmounted after the app stops.
    with small_tmpfs(tmp_path / "disk", 16) as d:
        yield d


def ws_url(client: Client) -> str:
    return str(client.make_url("/v1/call")).replace("http://", "ws://", 1)


async def fill_up(client: Client, disk: Path) -> None:
    """Make the disk full for the database too: an empty WAL must grow to take a write."""
    await client.app[store_key].db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    await asyncio.to_thread(fill, disk)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.2)


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


async def test_a_recording_that_hits_a_full_disk_ends_truncated_and_nothing_is_lost(
    disk: Path, start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app(data_dir=disk / "data")
    sent = noise_frames(250)
    honest = ThreadedCaller(ws_url(client), sent, tail_s=0.5)
    honest.start()
    assert await asyncio.to_thread(honest.talking.wait, 15)
    await asyncio.sleep(2.2)  # two whole blocks reach the file
    await fill_up(client, disk)
    hangup = await asyncio.to_thread(honest.result)
    # The caller was told at once, and the call went on unrecorded.
    kinds = [(m["type"], m.get("code") or m.get("state")) for m in honest.messages]
    failed_at = kinds.index(("error", "recording_failed"))
    assert ("recording", "off") in kinds[:failed_at]
    assert hangup["reason"] == "caller"
    # Its records could not be saved while the disk was full: the caller heard
    # so, and the socket closed with 1011, not as if everything were saved.
    assert ("error", "storage_unavailable") in kinds
    assert honest.close_code == 1011
    # A new call is refused the same way, never closed without a word.
    refused = new_caller(client)
    await refused.connect()
    await refused.send(
        {
            "type": "dial",
            "to": "+15550100",
            "from": "+15557654321",
            "codec": "pcm_s16le",
            "rate": 8000,
        }
    )
    await refused.closed_wait()
    assert refused.close_code == 1011
    assert [m["type"] for m in refused.messages] == ["error", "hangup"]
    assert refused.messages[0]["code"] == "storage_unavailable"
    metrics = await (await client.get("/metrics")).text()
    assert metric(metrics, "ivr_storage_failing") == 1
    assert metric(metrics, "ivr_recordings_truncated_total") == 1
    # The disk comes back: everything kept is written, without a restart.
    free(disk)
    store = client.app[store_key]
    rec_id = hangup["stats"]["recording_id"]

    async def saved() -> bool:
        rec = await store.recordings.get(rec_id)
        return bool(rec.status == "truncated")

    await eventually(saved)
    rec = await store.recordings.get(rec_id)
    call = await store.calls.get(rec.call_id)
    assert call.end_reason == "caller"
    assert call.recording_decision is not None
    assert call.recording_decision["record"] is True
    await eventually(lambda: _has_events(store, rec.call_id))
    events = [e.public() for e in await store.calls.events(rec.call_id)]
    assert {"type": "recording", "state": "off", "reason": "write_failed"}.items() <= next(
        e for e in events if e.get("reason") == "write_failed"
    ).items()
    assert events[-1]["type"] == "hangup"
    # The file ends cleanly where the disk filled: whole frames, a true header,
    # the caller's audio exact up to there.
    assert rec.truncated_reason is not None
    assert "No space left" in rec.truncated_reason
    assert rec.duration_s is not None
    assert rec.truncated_at_s == rec.duration_s > 0
    with store.recording_audio(rec.path) as audio:
        assert audio.size == rec.size_bytes == WAV_HEADER_BYTES + round(rec.duration_s * 8000) * 4
    assert assert_on_timeline(caller_channel(store, rec), sent) >= 50
    # Recovery: the gauge is back to 0 and a new call is recorded again.
    metrics = await (await client.get("/metrics")).text()
    assert metric(metrics, "ivr_storage_failing") == 0
    again = ThreadedCaller(ws_url(client), noise_frames(40))
    again.start()
    done = await asyncio.to_thread(again.result)
    assert again.close_code == 1000
    assert (await store.recordings.get(done["stats"]["recording_id"])).status == "complete"


async def _has_events(store: Any, call_id: str) -> bool:
    return bool(await store.calls.events(call_id))


async def test_reads_are_served_while_writes_fail_and_audited_once_the_disk_is_back(
    disk: Path, start_app: AppFactory
) -> None:
    client = await start_app(data_dir=disk / "data")
    token = await add_user(client, "sam@example.com", "supervisor")
    auth = {"Authorization": f"Bearer {token}"}
    older = ThreadedCaller(ws_url(client), noise_frames(30))
    older.start()
    rec_id = (await asyncio.to_thread(older.result))["stats"]["recording_id"]
    await fill_up(client, disk)
    resp = await client.get(f"/v1/recordings/{rec_id}", headers=auth)
    assert resp.status == 200
    assert (await resp.json())["id"] == rec_id
    audio = await client.get(f"/v1/recordings/{rec_id}/audio", headers=auth)
    assert audio.status == 200
    assert len(await audio.read()) > WAV_HEADER_BYTES
    resp = await client.patch(f"/v1/recordings/{rec_id}", json={"note": "a note"}, headers=auth)
    assert resp.status == 503
    body = await resp.json()
    assert body["error"]["code"] == "storage_unavailable"
    assert resp.headers["Retry-After"].isdigit()
    audit = client.app[audit_key]
    assert audit.pending >= 3  # the two reads and the refusal wait for the disk
    free(disk)

    async def written() -> bool:
        return audit.pending == 0

    await eventually(written)
    entries = await audit.entries(limit=1000)
    actions = [(e.action, e.outcome) for e in entries]
    tail = actions[actions.index(("recordings.read", "ok")) :]
    assert tail[:3] == [
        ("recordings.read", "ok"),
        ("recordings.audio", "ok"),
        ("storage.refused", "failed"),
    ]
    refused = next(e for e in entries if e.action == "storage.refused")
    assert refused.actor_role == "supervisor"
    assert refused.detail == {"method": "PATCH", "path": f"/v1/recordings/{rec_id}"}
    verdict = await verify(client.app[store_key])
    assert verdict.ok, verdict
    # Writes work again without a restart.
    resp = await client.patch(f"/v1/recordings/{rec_id}", json={"note": "a note"}, headers=auth)
    assert resp.status == 200
