"""The virtual clock: timers run in order, at once, and a stuck world is an error."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from ivr.simulate.loop import Stalled, VirtualClockLoop

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> tuple[VirtualClockLoop, T]:
    loop = VirtualClockLoop()
    try:
        return loop, loop.run_until_complete(coro)
    finally:
        loop.close()


def test_an_hour_of_sleeps_passes_in_virtual_time() -> None:
    async def main() -> float:
        for _ in range(3600):
            await asyncio.sleep(1.0)
        return asyncio.get_running_loop().time()

    t0 = time.perf_counter()
    _, virtual = run(main())
    assert virtual == pytest.approx(3600.0)
    assert time.perf_counter() - t0 < 30  # an hour of sleeping did not take an hour


def test_timers_fire_in_time_order_whatever_the_order_they_were_set() -> None:
    fired: list[tuple[str, float]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for name, at in (("c", 3.0), ("a", 1.0), ("b", 2.0)):
            loop.call_later(at, lambda n: fired.append((n, loop.time())), name)
        await asyncio.sleep(5)

    run(main())
    assert [n for n, _ in fired] == ["a", "b", "c"]
    assert [t for _, t in fired] == pytest.approx([1.0, 2.0, 3.0])


def test_the_clock_waits_for_a_thread_instead_of_jumping_past_it() -> None:
    async def main() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        ticks: list[float] = []
        loop.call_later(10.0, lambda: ticks.append(loop.time()))
        before = loop.time()
        await asyncio.to_thread(time.sleep, 0.05)  # real work on a real thread
        return loop.time() - before, len(ticks)

    _, (elapsed, ticks) = run(main())
    assert elapsed < 1.0  # the 10 s timer did not fire while the thread ran
    assert ticks == 0


def test_a_world_waiting_on_nothing_is_stalled_not_hung() -> None:
    async def main() -> None:
        await asyncio.get_running_loop().create_future()  # nothing will ever set it

    with pytest.raises(Stalled, match="nothing is scheduled"):
        run(main())
