"""The media clock: one per process, one tick every 20 ms for every live call.

A tick runs in three phases, in this order, for all calls together:

1. **collect**: each call gives up its caller's inbound frame for this tick
   (:meth:`Tickable.take_inbound`: the jitter buffer's next frame, or None
   for silence);
2. **detect**: in-band DTMF (ITU-T Q.24) runs over those frames, one batch
   per sample rate (:class:`media.dtmf.DtmfDetector`), each call in its own
   detector slot kept here. The batch is one join of the frames' bytes, and
   its keys are regrouped only when calls come or go, so the phase does no
   Python work per call beyond that join; silent calls skip the detector's
   product;
3. **tick**: each call does its tick's work with its frame and what the
   detector made of it (:class:`Inband`: a digit and its onset, or a tone
   still sounding). So the masking decision for a frame is taken before the
   recorder sees it; the recorder's delay line reaches back to a tone's
   first sample (:mod:`ivr.call.recorder`).

Ticks are paced against a start time (start + n x 20 ms), never by sleeping
20 ms after the previous tick, so the schedule does not drift
(:class:`TickSchedule`). A tick that runs late is run at once to catch up; if
the loop falls more than ``MAX_CATCH_UP`` ticks behind (a stalled process),
the missed ticks are skipped instead of being sent in a burst. Skipped ticks
still count: the tick number jumps by as many, so timers keep wall-clock
time, and every call hears of them (:meth:`Tickable.skipped`) so that its
recording writes them as silence and stays on the call's time line.

Everything a tick does is synchronous: each call sends and collects frames
without awaiting, so one slow peer cannot hold the others up. A call whose
phase raises is failed alone; the clock goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

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


@dataclass(slots=True)
class TickSchedule:
    """When the ticks are due: tick ``k`` at ``start + k * TICK_S``, whatever ran before.

    Pure arithmetic on the times it is given, so the catch-up and skip rules
    can be checked without a loop or a real clock.
    """

    start: float
    done: int = 0
    """Ticks run or skipped so far; the next one is ``done + 1``."""

    def due_in(self, now: float) -> float:
        """Seconds from ``now`` until the next tick is due (0 or less: it is due)."""
        return self.start + (self.done + 1) * TICK_S - now

    def run(self, now: float) -> tuple[int, float]:
        """The next tick runs at ``now``: (ticks to skip before it, how late it runs).

        The skipped ticks and this one count as done. Lateness is never
        negative: a tick is not run early.
        """
        late = now - (self.start + (self.done + 1) * TICK_S)
        skip = ticks_to_skip(late)
        self.done += skip + 1
        return skip, max(late, 0.0)


@dataclass(frozen=True, slots=True)
class Inband:
    """What in-band DTMF detection made of one call's frame of this tick (ITU-T Q.24)."""

    digits: tuple[tuple[str, int], ...] = ()
    """Digits reported with this frame, each with its tone's first sample, counted
    from this frame's first sample: negative when the tone began in an earlier
    frame (it is reported some 40 ms after it began)."""
    sounding: bool = False
    """A reported tone is still sounding at this frame's end."""

    @property
    def mask_from(self) -> int | None:
        """Where the caller's audio must be silenced from, in this frame's samples.

        The earliest reported onset, or 0 (the whole frame) while a tone
        sounds; None when this frame holds no tone.
        """
        starts = [onset for _, onset in self.digits]
        if self.sounding:
            starts.append(0)
        return min(starts) if starts else None


QUIET = Inband()
"""No tone in this frame: what nearly every call gets on nearly every tick."""


class Tickable(Protocol):
    """What the media clock needs of a call."""

    @property
    def key(self) -> str:
        """Unique among the live calls."""

    @property
    def sample_rate(self) -> int:
        """The caller's rate: which detector listens to this call."""

    def take_inbound(self) -> Pcm | None:
        """Phase 1: the caller's frame for this tick (None: silence)."""

    def tick(self, n: int, inbound: Pcm | None, inband: Inband) -> None:
        """Phase 3: do this call's work for tick ``n`` with its caller's frame and its DTMF."""

    def skipped(self, ticks: int) -> None:
        """``ticks`` ticks never ran (the process stalled); the next tick comes after them."""

    def fail(self, exc: BaseException) -> None:
        """A phase raised: end this call with an error."""


@dataclass(frozen=True, slots=True)
class _Slot:
    """A call on the clock, and its slot in the DTMF detector of its rate."""

    call: Tickable
    rate: int
    key: int


@dataclass(slots=True)
class _Lane:
    """The calls of one sample rate as the detect phase batches them.

    Rebuilt only when calls come or go: on a tick like the one before, the
    batch is one ``bytes.join`` of the frames and one detector call, with no
    work per call beyond the join's.
    """

    detector: DtmfDetector
    silence: bytes
    """One frame of silence at this rate, as int16 bytes: what a missing frame is."""
    rows: list[int] = field(default_factory=list)
    """Positions of this rate's calls in the tick's list of calls."""
    whole: bool = False
    """Every call of the tick is of this rate (``rows`` is all of them)."""
    keys: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    index: dict[int, int] = field(default_factory=dict)
    """Detector key to position in the tick's list of calls."""

    def regroup(self, slots: list[_Slot], rate: int) -> None:
        self.rows = [i for i, slot in enumerate(slots) if slot.rate == rate]
        self.whole = len(self.rows) == len(slots)
        self.keys = np.array([slots[i].key for i in self.rows], dtype=np.int64)
        self.index = {slots[i].key: i for i in self.rows}

    def batch(self, frames: list[Pcm | None]) -> npt.NDArray[np.int16]:
        """This lane's frames as one (calls, samples) array, silence for a missing frame."""
        mine = frames if self.whole else [frames[i] for i in self.rows]
        silence = self.silence
        try:
            parts: list[Any] = [silence if f is None else f for f in mine]  # arrays are buffers
            data = b"".join(parts)
        except (TypeError, BufferError):  # a frame that is not contiguous
            data = b""
        width = len(silence) // 2
        if len(data) == len(mine) * len(silence):
            return np.frombuffer(data, dtype=np.int16).reshape(len(mine), width)
        batch = np.zeros((len(mine), width), dtype=np.int16)
        for row, frame in enumerate(mine):
            if frame is not None:
                batch[row] = frame
        return batch


class MediaClock:
    """Ticks all live calls together.

    ``now`` and ``sleep`` are the clock it keeps time by: the monotonic clock
    and the event loop's sleep, or a test's fakes.
    """

    def __init__(
        self,
        *,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.ticks = 0
        self._slots: dict[str, _Slot] = {}
        self._now = now
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None
        self.on_tick_lateness: Callable[[float], None] | None = None
        self.on_skip: Callable[[int], None] | None = None
        # In-band DTMF (ITU-T Q.24): one detector per rate, all its calls in one batch.
        self._lanes = {
            rate: _Lane(DtmfDetector(rate), bytes(2 * samples_per_frame(rate)))
            for rate in SAMPLE_RATES
        }
        self._free_keys: dict[int, list[int]] = {rate: [] for rate in SAMPLE_RATES}
        self._next_key: dict[int, int] = dict.fromkeys(SAMPLE_RATES, 0)
        self._changes = 0  # calls added or removed: the lanes are regrouped after any
        self._grouped = -1

    def add(self, call: Tickable) -> None:
        rate = call.sample_rate
        free = self._free_keys[rate]
        if free:
            key = free.pop()
        else:
            key = self._next_key[rate]
            self._next_key[rate] += 1
        self._lanes[rate].detector.add(key)
        self._slots[call.key] = _Slot(call, rate, key)
        self._changes += 1

    def remove(self, call: Tickable) -> None:
        slot = self._slots.pop(call.key, None)
        if slot is not None:
            self._lanes[slot.rate].detector.remove(slot.key)
            self._free_keys[slot.rate].append(slot.key)
            self._changes += 1

    def __len__(self) -> int:
        return len(self._slots)

    def tick(self) -> None:
        """Run one tick for every call, phase by phase (tests call this directly)."""
        self.ticks += 1
        n = self.ticks
        slots, frames = self._collect()
        found = self._detect(slots, frames)
        for slot, frame, inband in zip(slots, frames, found, strict=True):
            try:
                slot.call.tick(n, frame, inband)
            except Exception as exc:
                self._failed(slot.call, exc)

    def _collect(self) -> tuple[list[_Slot], list[Pcm | None]]:
        """Phase 1: every call's inbound frame; a call that cannot give one is failed."""
        slots: list[_Slot] = []
        frames: list[Pcm | None] = []
        for slot in list(self._slots.values()):
            try:
                frame = slot.call.take_inbound()
            except Exception as exc:
                self._failed(slot.call, exc)
                continue
            slots.append(slot)
            frames.append(frame)
        return slots, frames

    def _detect(self, slots: list[_Slot], frames: list[Pcm | None]) -> list[Inband]:
        """Phase 2: in-band DTMF over every call's frame, one batch per rate."""
        found = [QUIET] * len(slots)
        if self._grouped != self._changes:
            for rate, lane in self._lanes.items():
                lane.regroup(slots, rate)
            self._grouped = self._changes
        for lane in self._lanes.values():
            if not lane.rows:
                continue
            detector = lane.detector
            events = detector.process(lane.keys, lane.batch(frames))
            held = detector.held
            if not events and not held:
                continue
            reported: dict[int, list[tuple[str, int]]] = {}
            for event in events:
                reported.setdefault(event.key, []).append((event.digit, event.onset))
            for key in reported.keys() | held:
                i = lane.index.get(key)
                if i is not None:
                    found[i] = Inband(tuple(reported.get(key, ())), key in held)
        return found

    def skip(self, ticks: int) -> None:
        """Skip ``ticks`` ticks at once: no frames for them, but they count.

        Each call is told, so its recording writes the skipped span as silence.
        """
        self.ticks += ticks
        if self.on_skip is not None:
            self.on_skip(ticks)
        for slot in list(self._slots.values()):
            try:
                slot.call.skipped(ticks)
            except Exception as exc:
                self._failed(slot.call, exc)

    def _failed(self, call: Tickable, exc: Exception) -> None:
        log.exception("call %s failed in the media clock", call.key)
        self.remove(call)
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
        schedule = TickSchedule(self._now())
        while True:
            delay = schedule.due_in(self._now())
            if delay > 0:
                await self._sleep(delay)
            skip, late = schedule.run(self._now())
            if skip:
                log.warning("media clock %.0f ms late: skipped %d ticks", late * 1000, skip)
                self.skip(skip)
            if self.on_tick_lateness is not None:
                self.on_tick_lateness(late)
            self.tick()
            if delay <= 0:
                # Behind schedule: still let the readers run between ticks.
                await self._sleep(0)
