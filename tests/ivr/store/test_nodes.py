"""The nodes table, on SQLite and PostgreSQL: register, beat, go stale, stop, come back."""

from __future__ import annotations

import os
import time

import pytest

from ivr import privacy
from ivr.services.repair import repair
from ivr.stamp import now_iso
from ivr.store import PresenceRow, Store
from tests.ivr.store.conftest import a_call, a_recording

T0 = "2026-12-03T10:00:00.000Z"


async def test_a_node_is_alive_while_it_beats_and_not_once_it_stops(store: Store) -> None:
    await store.nodes.register("a", "host-a", 100, T0)
    await store.nodes.register("b", "host-b", 200, T0)
    assert await store.nodes.heartbeat("a", "2026-12-03T10:00:10.000Z", "draining", 3)
    (a, b) = await store.nodes.nodes("2026-12-03T10:00:20.000Z", 15)
    assert (a.id, a.host, a.pid, a.state, a.calls, a.alive) == (
        "a",
        "host-a",
        100,
        "draining",
        3,
        True,
    )
    assert (a.started_at, a.heartbeat_at) == (T0, "2026-12-03T10:00:10.000Z")
    assert (b.id, b.state, b.alive) == ("b", "ready", False)  # 20 s since its last beat
    assert await store.nodes.heartbeat("a", "2026-12-03T10:00:21.000Z", "stopped", 0)
    assert not (await store.nodes.nodes("2026-12-03T10:00:21.000Z", 15))[0].alive


async def test_a_restarted_node_registers_afresh_and_an_unknown_one_cannot_beat(
    store: Store,
) -> None:
    assert not await store.nodes.heartbeat("ghost", T0, "ready", 0)
    assert await store.nodes.nodes(T0, 15) == []
    await store.nodes.register("a", "host-a", 100, T0)
    await store.nodes.heartbeat("a", "2026-12-03T10:00:05.000Z", "stopped", 0)
    await store.nodes.register("a", "host-a", 101, "2026-12-03T11:00:00.000Z")
    (a,) = await store.nodes.nodes("2026-12-03T11:00:01.000Z", 15)
    assert (a.pid, a.state, a.calls, a.alive) == (101, "ready", 0, True)
    assert a.started_at == "2026-12-03T11:00:00.000Z"
    assert await store.nodes.forget("a")
    assert not await store.nodes.forget("a")
    assert await store.nodes.nodes(T0, 15) == []


async def test_a_node_repairs_only_its_own_calls_recordings_and_jobs(store: Store) -> None:
    """Two nodes on one store: node a restarting must not end node b's live call."""
    mine, theirs, old = [await a_call(store, node_id=n) for n in ("a", "b", None)]
    recs = {c: await a_recording(store, c, finish=False) for c in (mine, theirs, old)}
    unfinished = {r.id for r in await store.recordings.unfinished(["b"])}
    assert unfinished == {recs[mine], recs[old]}
    assert len(await store.recordings.unfinished()) == 3  # one node: everything
    assert await store.calls.close_unended(T0, ["b"]) == 2  # b is alive: its call is spared
    assert (await store.calls.get(theirs)).ended_at is None
    assert (await store.calls.get(mine)).end_reason == "error"

    for c in (mine, theirs):
        await a_recording(store, c, transcribe=True)
    first, second = await store.transcripts.claim("a"), await store.transcripts.claim("b")
    assert first is not None
    assert second is not None
    assert await store.transcripts.requeue(["b"]) == 1  # a's job only: b is still running its own
    job = await store.transcripts.job(second.recording_id)
    assert job is not None
    assert job.state == "running"
    mine_job = await store.transcripts.job(first.recording_id)
    assert mine_job is not None
    assert mine_job.state == "pending"


async def test_start_up_repair_on_a_shared_store_keeps_to_its_own_node(store: Store) -> None:
    store.node_id = "a"
    await store.nodes.register("b", "host-b", 2, now_iso())  # alive: its call is spared
    await store.nodes.register("gone", "host-c", 3, "2026-01-01T00:00:00.000Z")  # long dead
    mine, theirs = await a_call(store, node_id="a"), await a_call(store, node_id="b")
    dead = await a_call(store, node_id="gone")
    dead_rec = await a_recording(store, dead, finish=False)
    mine_rec = await a_recording(store, mine, finish=False)
    theirs_rec = await a_recording(store, theirs, finish=False)
    row = await store.recordings.get(theirs_rec)
    assert row is not None
    final = store.recording_path(row.path)
    theirs_partial = final.with_name(final.name + ".partial")
    final.rename(theirs_partial)  # node b is writing it
    folder = store.recordings_dir / "t"
    old, new = folder / "old.wav.partial", folder / "new.wav.partial"
    for orphan in (old, new):
        orphan.write_bytes(b"RIFF" + bytes(40))
    os.utime(old, (time.time() - 120, time.time() - 120))  # a crash's, long untouched

    report = await repair(store)
    assert sorted(report.recordings) == sorted([mine_rec, dead_rec])
    assert report.calls_closed == 2
    assert (await store.recordings.get(theirs_rec)).status == "recording"
    assert (await store.calls.get(theirs)).ended_at is None
    assert theirs_partial.exists()
    assert (old.exists(), new.exists(), report.orphans_deleted) == (False, True, 1)


def seat(seat_id: str, state: str = "ready", teams: tuple[str, ...] = ("support",)) -> PresenceRow:
    return PresenceRow(seat_id=seat_id, node_id="", user_id=f"u_{seat_id}", name=f"Agent {seat_id}",
                       teams=teams, state=state, updated_at=T0)  # type: ignore[arg-type]  # fmt: skip


async def test_each_node_publishes_its_own_agents_and_a_new_view_replaces_the_old(
    store: Store,
) -> None:
    await store.nodes.register("a", "host-a", 1, T0, url="http://10.0.0.1:8080")
    await store.presence.publish("a", [seat("s1"), seat("s2", "busy", ("support", "sales"))])
    await store.presence.publish("b", [seat("s3")])
    rows = await store.presence.of_nodes(["a"])
    assert [(r.seat_id, r.node_id, r.state, r.teams) for r in rows] == [
        ("s1", "a", "ready", ("support",)),
        ("s2", "a", "busy", ("support", "sales")),
    ]
    await store.presence.publish("a", [seat("s2", "ready")])  # s1 signed out, s2 free again
    assert [(r.seat_id, r.state) for r in await store.presence.of_nodes(["a", "b"])] == [
        ("s2", "ready"),
        ("s3", "ready"),
    ]
    await store.presence.publish("a", [])
    assert [r.seat_id for r in await store.presence.of_nodes(["a", "b"])] == ["s3"]
    assert await store.presence.of_nodes([]) == []
    (a,) = await store.nodes.nodes(T0, 15)
    assert a.url == "http://10.0.0.1:8080"


async def test_an_erasure_waits_for_a_live_call_another_node_records(store: Store) -> None:
    """Its writer is elsewhere: deleting now would cut the file from under it, unseen."""
    caller = "+15557650009"
    await store.nodes.register("b", "host-b", 200, now_iso())
    call_id = await a_call(store, caller=caller, node_id="b")
    rec_id = await a_recording(store, call_id, finish=False)
    path = store.recording_path((await store.recordings.get(rec_id)).path)
    with pytest.raises(privacy.LiveElsewhere, match="held by node b"):
        await privacy.erase(store, "contact", caller, None)
    assert path.exists()  # nothing was touched: no job, no block, no deletion
    assert await store.privacy.open_erasures() == []
    assert await store.privacy.blocks() == []
    # Node b dies (no heartbeat for a minute): its call is not live, and is erased.
    await store.nodes.heartbeat("b", "2000-01-01T00:00:00.000Z", "ready", 1)
    receipt = await privacy.erase(store, "contact", caller, None)
    assert receipt["erased"]["recordings"] == 1
    assert not path.exists()
