"""The media clock: its schedule (catch-up and skips), its three phases, DTMF, failures."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np
import pytest

from ivr.call.clock import (
    MAX_CATCH_UP,
    QUIET,
    TICK_S,
    Inband,
    MediaClock,
    TickSchedule,
    ticks_to_skip,
)
from media import dtmf
from media.frame import Pcm, samples_per_frame

# -- the schedule, on given times -------------------------------------------------------


def test_a_clock_up_to_the_catch_up_limit_behind_skips_nothing() -> None:
    assert ticks_to_skip(0.0) == 0
    assert ticks_to_skip(-0.5) == 0
    assert ticks_to_skip(MAX_CATCH_UP * TICK_S) == 0


def test_beyond_the_limit_every_whole_tick_of_the_delay_is_skipped() -> None:
    assert ticks_to_skip(MAX_CATCH_UP * TICK_S + 0.001) == MAX_CATCH_UP
    assert ticks_to_skip(1.0) == 50
    assert ticks_to_skip(3.219) == 160


def test_ticks_are_due_on_a_fixed_grid_whatever_the_jitter() -> None:
    schedule = TickSchedule(start=100.0)
    assert schedule.due_in(100.0) == pytest.approx(TICK_S)
    # Each tick runs a little late, by a different amount: the next stays on the grid.
    for k, jitter in enumerate([0.003, 0.011, 0.0, 0.019, 0.007], start=1):
        due = 100.0 + k * TICK_S
        assert schedule.due_in(due + jitter) == pytest.approx(-jitter)
        skip, late = schedule.run(due + jitter)
        assert skip == 0
        assert late == pytest.approx(jitter)
    assert schedule.done == 5
    assert schedule.due_in(100.0 + 5 * TICK_S) == pytest.approx(TICK_S)


def test_a_short_stall_is_caught_up_tick_by_tick() -> None:
    """Five ticks late (within the catch-up limit): they all run, back to back."""
    schedule = TickSchedule(start=0.0)
    now = 6 * TICK_S  # tick 1 was due at one tick; the process woke five ticks later
    lateness = []
    while schedule.due_in(now) <= 1e-12:
        skip, late = schedule.run(now)
        assert skip == 0
        lateness.append(round(late / TICK_S))
    assert lateness == [5, 4, 3, 2, 1, 0]
    assert schedule.done == 6


def test_a_long_stall_is_skipped_and_the_next_tick_is_on_time() -> None:
    schedule = TickSchedule(start=0.0)
    schedule.run(TICK_S)
    stall_end = TICK_S + 0.5  # tick 2 due at 2 ticks; 24 ticks too late
    skip, late = schedule.run(stall_end)
    assert skip == 24
    assert late == pytest.approx(0.5 - TICK_S)
    assert schedule.done == 1 + 24 + 1
    assert schedule.due_in(stall_end) == pytest.approx(TICK_S)


def test_a_tick_is_never_run_early() -> None:
    schedule = TickSchedule(start=0.0)
    assert schedule.run(0.0) == (0, 0.0)  # asked early: lateness is not negative


# -- the loop, on a fake clock ----------------------------------------------------------


class FakeTime:
    """Monotonic time that passes only when the clock sleeps, or a test says so."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds
        await asyncio.sleep(0)


@dataclass
class Call:
    key: str
    sample_rate: int = 8000
    inbound: list[Pcm | None] = field(default_factory=list)
    ticks: list[int] = field(default_factory=list)
    heard: list[Inband] = field(default_factory=list)
    skips: list[int] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    reached: asyncio.Event | None = None  # set once ``wanted`` ticks have run
    wanted: int = 0

    def take_inbound(self) -> Pcm | None:
        self.log.append(f"take {self.key}")
        return self.inbound.pop(0) if self.inbound else None

    def tick(self, n: int, inbound: Pcm | None, inband: Inband) -> None:
        self.log.append(f"tick {self.key}")
        self.ticks.append(n)
        self.heard.append(inband)
        if self.reached is not None and len(self.ticks) >= self.wanted:
            self.reached.set()

    def skipped(self, ticks: int) -> None:
        self.skips.append(ticks)

    def fail(self, exc: BaseException) -> None:
        raise AssertionError(f"failed: {exc}")


async def run_until(clock: MediaClock, call: Call, ticks: int) -> None:
    """Run the clock's loop until ``call`` has had ``ticks`` ticks."""
    call.reached, call.wanted = asyncio.Event(), ticks
    clock.start()
    await asyncio.wait_for(call.reached.wait(), 5)
    await clock.stop()


@pytest.mark.parametrize(
    ("stall_s", "expected_ticks", "expected_skips"),
    [
        (0.5, [1, 2, 27, 28], [24]),  # 24 ticks missed: skipped, and tick 27 is on time
        (0.1, [1, 2, 3, 4, 5, 6, 7, 8], []),  # 5 ticks missed: caught up back to back
    ],
)
async def test_the_loop_skips_a_stall_and_catches_up_a_hiccup(
    stall_s: float, expected_ticks: list[int], expected_skips: list[int]
) -> None:
    fake = FakeTime()
    clock = MediaClock(now=fake.now, sleep=fake.sleep)
    skipped: list[int] = []
    lateness: list[float] = []
    clock.on_skip = skipped.append
    clock.on_tick_lateness = lateness.append

    class Stalling(Call):
        def tick(self, n: int, inbound: Pcm | None, inband: Inband) -> None:
            super().tick(n, inbound, inband)
            if len(self.ticks) == 2:
                fake.t += stall_s  # the process stalls during tick 2

    call = Stalling("a")
    clock.add(call)
    await run_until(clock, call, len(expected_ticks))
    assert call.ticks[: len(expected_ticks)] == expected_ticks
    assert call.skips == skipped == expected_skips
    assert lateness[:2] == [0.0, 0.0]
    assert max(lateness) == pytest.approx(stall_s - TICK_S)


# -- one tick, phase by phase ----------------------------------------------------------


def test_every_frame_is_collected_before_any_call_ticks() -> None:
    clock = MediaClock()
    log: list[str] = []
    calls = [Call("a", log=log), Call("b", 16000, log=log), Call("c", log=log)]
    for c in calls:
        clock.add(c)
    clock.tick()
    assert log == ["take a", "take b", "take c", "tick a", "tick b", "tick c"]


def test_a_skip_tells_every_call_and_the_tick_number_keeps_wall_time() -> None:
    clock = MediaClock()
    seen: list[int] = []
    clock.on_skip = seen.append
    a, b = Call("a"), Call("b")
    clock.add(a)
    clock.add(b)
    clock.tick()
    clock.tick()
    clock.skip(25)
    clock.tick()
    assert a.ticks == b.ticks == [1, 2, 28]
    assert a.skips == b.skips == [25]
    assert seen == [25]
    assert clock.ticks == 28  # the 25 skipped ticks count


def test_a_call_whose_skip_raises_is_failed_alone() -> None:
    clock = MediaClock()
    failed: list[str] = []

    class Broken(Call):
        def skipped(self, ticks: int) -> None:
            raise RuntimeError("boom")

        def fail(self, exc: BaseException) -> None:
            failed.append(self.key)

    good, bad = Call("good"), Broken("bad")
    clock.add(good)
    clock.add(bad)
    clock.skip(3)
    clock.tick()
    assert failed == ["bad"]
    assert good.skips == [3]
    assert good.ticks == [4]
    assert len(clock) == 1


@pytest.mark.parametrize("phase", ["take_inbound", "tick"])
def test_a_call_whose_phase_raises_is_failed_alone(phase: str) -> None:
    clock = MediaClock()
    failed: list[str] = []

    class Broken(Call):
        def take_inbound(self) -> Pcm | None:
            if phase == "take_inbound":
                raise RuntimeError("boom")
            return super().take_inbound()

        def tick(self, n: int, inbound: Pcm | None, inband: Inband) -> None:
            if phase == "tick":
                raise RuntimeError("boom")
            super().tick(n, inbound, inband)

        def fail(self, exc: BaseException) -> None:
            failed.append(self.key)

    before, bad, after = Call("before"), Broken("bad"), Call("after")
    for c in (before, bad, after):
        clock.add(c)
    clock.tick()
    clock.tick()
    assert failed == ["bad"]
    assert before.ticks == after.ticks == [1, 2]
    assert bad.ticks == []
    assert len(clock) == 2
    # Its detector slot is free again: a new call of its rate takes it, and is heard.
    again = Call("again", inbound=frames_of(tone_signal("7", 8000), 8000))
    clock.add(again)
    for _ in range(len(again.inbound)):
        clock.tick()
    assert [d for i in again.heard for d, _ in i.digits] == ["7"]


# -- in-band DTMF, per call ------------------------------------------------------------

LEAD_MS = 70  # silence before the tone: its onset falls inside a frame


def tone_signal(digit: str, rate: int, tone_ms: int = 120) -> Pcm:
    lead = np.zeros(rate * LEAD_MS // 1000, dtype=np.int16)
    tail = np.zeros(rate // 10, dtype=np.int16)
    return np.concatenate([lead, dtmf.generate(digit, tone_ms, rate), tail])


def frames_of(x: Pcm, rate: int) -> list[Pcm | None]:
    n = samples_per_frame(rate)
    x = np.concatenate([x, np.zeros(-len(x) % n, dtype=np.int16)])
    return list(x.reshape(-1, n))


@pytest.mark.parametrize("rate", [8000, 16000])
def test_each_call_is_ticked_with_its_own_digit_onset_and_sounding(rate: int) -> None:
    """Two calls at each rate, one dialling: only it hears the digit, with its onset."""
    clock = MediaClock()
    n = samples_per_frame(rate)
    signal = tone_signal("5", rate)
    dialling = Call("dialling", rate, inbound=frames_of(signal, rate))
    quiet = Call("quiet", rate)  # no audio at all: silence
    other = Call("other", 24000 - rate)  # the other rate, the other detector
    for c in (quiet, dialling, other):
        clock.add(c)
    for _ in range(len(dialling.inbound)):
        clock.tick()
    assert all(i == QUIET for i in quiet.heard + other.heard)
    reports = [(t, i) for t, i in enumerate(dialling.heard) if i.digits]
    assert len(reports) == 1
    at, report = reports[0]
    [(digit, onset)] = report.digits
    assert digit == "5"
    true_onset = rate * LEAD_MS // 1000
    assert at * n + onset == pytest.approx(true_onset, abs=rate // 400)
    assert onset < 0  # reported after its first frames went by
    assert report.sounding
    assert report.mask_from == onset
    # Sounding from the report until the tone has ended, then quiet again.
    sounding = [t for t, i in enumerate(dialling.heard) if i.sounding]
    assert sounding == list(range(at, sounding[-1] + 1))
    tone_end = true_onset + rate * 120 // 1000
    assert sounding[-1] * n < tone_end <= (sounding[-1] + 2) * n
    assert all(dialling.heard[t].mask_from == 0 for t in sounding[1:])
    assert dialling.heard[-1] == QUIET


def test_inband_mask_from_is_the_earliest_start() -> None:
    assert QUIET.mask_from is None
    assert Inband(sounding=True).mask_from == 0
    assert Inband((("1", -37),), sounding=True).mask_from == -37
    assert Inband((("1", -37), ("2", -90))).mask_from == -90


def test_digits_follow_their_calls_when_calls_come_and_go() -> None:
    """Calls added and removed between ticks (regrouping the batch): each digit to its caller."""
    rate = 8000
    clock = MediaClock()
    first = Call("first", rate, inbound=frames_of(tone_signal("3", rate), rate))
    gone = Call("gone", rate, inbound=frames_of(tone_signal("9", rate, 200), rate))
    clock.add(gone)
    clock.add(first)
    for _ in range(8):  # "gone" has been heard and its tone still sounds when it leaves
        clock.tick()
    assert gone.heard[-1].sounding
    clock.remove(gone)
    late = Call("late", rate, inbound=frames_of(tone_signal("7", rate), rate))
    clock.add(late)  # takes the detector slot "gone" left
    for _ in range(len(late.inbound) + 2):
        clock.tick()
    heard = {c.key: [d for i in c.heard for d, _ in i.digits] for c in (first, gone, late)}
    assert heard == {"first": ["3"], "gone": ["9"], "late": ["7"]}
    assert late.heard[0] == QUIET  # nothing of the slot's last owner's tone
    assert len(gone.heard) == 8


@pytest.mark.parametrize("odd", ["strided", "int32"])
def test_frames_that_are_not_plain_int16_rows_are_still_heard(odd: str) -> None:
    """A frame that cannot be joined as bytes takes the slower copy, with the same result."""
    rate = 8000
    n = samples_per_frame(rate)
    frames = frames_of(tone_signal("8", rate), rate)
    if odd == "strided":  # every other sample of a frame twice as long
        odd_frames: list[Pcm | None] = [np.repeat(f, 2)[::2] for f in frames if f is not None]
    else:
        odd_frames = [f.astype(np.int32) for f in frames if f is not None]
    plain, other = Call("plain", rate, inbound=list(frames)), Call("odd", rate, inbound=odd_frames)
    clock = MediaClock()
    clock.add(plain)
    clock.add(other)
    for _ in range(len(frames)):
        clock.tick()
    assert all(f is None or len(f) == n for f in odd_frames)
    assert [i.digits for i in other.heard] == [i.digits for i in plain.heard]
    assert any(i.digits for i in plain.heard)
