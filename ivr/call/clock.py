"""The media clock: one per process, one tick every 20 ms for every live call.

Ticks are paced against a start time (start + n x 20 ms), never by sleeping
20 ms after the previous tick, so the schedule does not drift. A tick that
runs late is run at once to catch up; if the loop falls more than
``MAX_CATCH_UP`` ticks behind (a stalled process), the missed ticks are
skipped instead of being sent in a burst. Skipped ticks still count: the
tick number jumps by as many, so timers keep wall-clock time, and every call
hears of them (:meth:`Tickable.skipped`) so that its recording writes them
as silence and stays on the call's time line.

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

import numpy as np

from media.dtmf import DtmfDetector
from media.frame import PTIME_MS, SAMPLE_RATES, Pcm, samples_per_frame

log = logging.getLogger("ivr.clock")

TICK_S = PTIME_MS / 1000
MAX_CATCH_UP = 10


def ticks_to_skip(late_s: float) -> int:
    """How many ticks to skip when the clock runs ``late_s`` behind its schedule.

    Up to ``MAX_CATCH_UP`` ticks late, none: the late ticks run back to back
    and catch up. Beyond that, every whole tick of the delay is skipped, so
    the next tick runs on time again.
    """
    if late_s <= MAX_CATCH_UP * TICK_S:
        return 0
    return int(late_s / TICK_S)


class Tickable(Protocol):
    key: str
    dtmf_key: int  # set by the clock: the call's slot in the DTMF detector
    last_inbound: Pcm | None  # the caller's frame of the last tick (None: silence)

    @property
    def sample_rate(self) -> int:
        """The caller's rate: which detector listens to this call."""

    def tick(self, n: int) -> None:
        """Do this call's work for tick ``n``."""

    def skipped(self, ticks: int) -> None:
        """``ticks`` ticks never ran (the process stalled); the next tick comes after them."""

    def inband_digit(self, digit: str, onset: int) -> None:
        """A DTMF tone was detected; it began ``onset`` samples from this tick's frame start."""

    def mask_tone(self) -> None:
        """A detected tone is still sounding in this tick's frame."""

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
        self.on_skip: Callable[[int], None] | None = None
        # In-band DTMF (ITU-T Q.24): one detector per rate, all its calls in one batch.
        self._detectors = {rate: DtmfDetector(rate) for rate in SAMPLE_RATES}
        self._free_keys: dict[int, list[int]] = {rate: [] for rate in SAMPLE_RATES}
        self._next_key: dict[int, int] = dict.fromkeys(SAMPLE_RATES, 0)

    def add(self, call: Tickable) -> None:
        rate = call.sample_rate
        free = self._free_keys[rate]
        if free:
            key = free.pop()
        else:
            key = self._next_key[rate]
            self._next_key[rate] += 1
        self._detectors[rate].add(key)
        call.dtmf_key = key
        call.last_inbound = None
        self._calls[call.key] = call

    def remove(self, call: Tickable) -> None:
        if self._calls.pop(call.key, None) is not None:
            rate = call.sample_rate
            self._detectors[rate].remove(call.dtmf_key)
            self._free_keys[rate].append(call.dtmf_key)

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
                self._failed(call, exc)
        self._detect()

    def skip(self, ticks: int) -> None:
        """Skip ``ticks`` ticks at once: no frames for them, but they count.

        Each call is told, so its recording writes the skipped span as silence.
        """
        self.ticks += ticks
        self._skipped += ticks
        if self.on_skip is not None:
            self.on_skip(ticks)
        for call in list(self._calls.values()):
            try:
                call.skipped(ticks)
            except Exception as exc:
                self._failed(call, exc)

    def _failed(self, call: Tickable, exc: Exception) -> None:
        log.exception("call %s failed in the media clock", call.key)
        self.remove(call)
        call.fail(exc)

    def _detect(self) -> None:
        """Run in-band DTMF detection over every call's inbound frame, per rate, batched."""
        calls = list(self._calls.values())
        for rate, detector in self._detectors.items():
            group = [c for c in calls if c.sample_rate == rate]
            if not group:
                continue
            frames = np.zeros((len(group), samples_per_frame(rate)), dtype=np.int16)
            for i, call in enumerate(group):
                if call.last_inbound is not None:
                    frames[i] = call.last_inbound
            by_key = {c.dtmf_key: c for c in group}
            for key, digit, onset in detector.process([c.dtmf_key for c in group], frames):
                call = by_key[key]
                try:
                    call.inband_digit(digit, onset)
                except Exception as exc:
                    self._failed(call, exc)
            for call in group:
                if detector.holding(call.dtmf_key) and call.key in self._calls:
                    call.mask_tone()

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
            skip = ticks_to_skip(late)
            if skip:
                k += skip
                log.warning("media clock %.0f ms late: skipped %d ticks", late * 1000, skip)
                self.skip(skip)
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
