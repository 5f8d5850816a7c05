"""The media clock's catch-up and skip rule, and what a skip tells each call."""

from __future__ import annotations

from dataclasses import dataclass, field

from ivr.call.clock import MAX_CATCH_UP, TICK_S, MediaClock, ticks_to_skip
from media.frame import Pcm


def test_a_clock_up_to_the_catch_up_limit_behind_skips_nothing() -> None:
    assert ticks_to_skip(0.0) == 0
    assert ticks_to_skip(-0.5) == 0
    assert ticks_to_skip(MAX_CATCH_UP * TICK_S) == 0


def test_beyond_the_limit_every_whole_tick_of_the_delay_is_skipped() -> None:
    assert ticks_to_skip(MAX_CATCH_UP * TICK_S + 0.001) == MAX_CATCH_UP
    assert ticks_to_skip(1.0) == 50
    assert ticks_to_skip(3.219) == 160


@dataclass
class Call:
    key: str
    sample_rate: int = 8000
    dtmf_key: int = -1
    last_inbound: Pcm | None = None
    ticks: list[int] = field(default_factory=list)
    skips: list[int] = field(default_factory=list)

    def tick(self, n: int) -> None:
        self.ticks.append(n)

    def skipped(self, ticks: int) -> None:
        self.skips.append(ticks)

    def inband_digit(self, digit: str, onset: int) -> None:
        raise AssertionError("no tones here")

    def mask_tone(self) -> None:
        pass

    def fail(self, exc: BaseException) -> None:
        raise AssertionError(f"failed: {exc}")


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
    assert clock.statistics().ticks_skipped == 25


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
