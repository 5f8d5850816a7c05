"""The nodes table, on SQLite and PostgreSQL: register, beat, go stale, stop, come back."""

from __future__ import annotations

from ivr.store import Store

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
