"""The media clock: one per process, one tick every 20 ms for every live call.

Ticks are paced against a start time (start + n x 20 ms), never by sleeping
20 ms after the previous tick, so the schedule does not drift. A tick that
runs late is run at once to catch up; if the loop falls more than
``MAX_CATCH_UP`` ticks behind (a stalled process), the missed ticks are
skipped and counted instead of being sent in a burst.

Everything a tick does is synchronous: each call's :meth:`Tickable.tick`
sends and collects frames without awaiting, so one slow peer cannot hold
the others up. A call whose tick raises is failed alone; the clock goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from media.frame import PTIME_MS

log = logging.getLogger("ivr.clock")

TICK_S = PTIME_MS / 1000
MAX_CATCH_UP = 10


class Tickable(Protocol):
    key: str

    def tick(self, n: int) -> None:
        """Do this call's work for tick ``n``."""

    def fail(self, exc: BaseException) -> None:
        """The tick raised: end this call with an error."""


@dataclass(frozen=True, slots=True)
class ClockStatistics:
    ticks: int
    calls: int
    ticks_skipped: int
    late_ms_max: float
    late_ms_last: float


class MediaClock:
    """Ticks all live calls together."""

    def __init__(self, *, now: Callable[[], float] = time.monotonic) -> None:
        self.ticks = 0
        self._calls: dict[str, Tickable] = {}
        self._now = now
        self._skipped = 0
        self._late_max = 0.0
        self._late_last = 0.0
        self._task: asyncio.Task[None] | None = None
        self.on_tick_lateness: Callable[[float], None] | None = None

    def add(self, call: Tickable) -> None:
        self._calls[call.key] = call

    def remove(self, call: Tickable) -> None:
        self._calls.pop(call.key, None)

    def __len__(self) -> int:
        return len(self._calls)

    def tick(self) -> None:
        """Run one tick for every call (tests call this directly)."""
        self.ticks += 1
        n = self.ticks
        for call in list(self._calls.values()):
            try:
                call.tick(n)
            except Exception as exc:
                log.exception("call %s failed in the media clock", call.key)
                self._calls.pop(call.key, None)
                call.fail(exc)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="media-clock")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        start = self._now()
        k = 0
        while True:
            k += 1
            target = start + k * TICK_S
            delay = target - self._now()
            if delay > 0:
                await asyncio.sleep(delay)
            late = self._now() - target
            if late > MAX_CATCH_UP * TICK_S:
                skip = int(late / TICK_S)
                self._skipped += skip
                k += skip
                log.warning("media clock %.0f ms late: skipped %d ticks", late * 1000, skip)
            self._late_last = max(late, 0.0) * 1000
            self._late_max = max(self._late_max, self._late_last)
            if self.on_tick_lateness is not None:
                self.on_tick_lateness(self._late_last / 1000)
            self.tick()
            if delay <= 0:
                # Behind schedule: still let the readers run between ticks.
                await asyncio.sleep(0)

    def statistics(self) -> ClockStatistics:
        return ClockStatistics(
            self.ticks, len(self._calls), self._skipped, self._late_max, self._late_last
        )
