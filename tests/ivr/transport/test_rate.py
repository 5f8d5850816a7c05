"""Token buckets: what one connection may send, on a clock the test moves by hand."""

from __future__ import annotations

import pytest

from ivr.transport.rate import Rate, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_burst_is_admitted_and_the_next_one_refused() -> None:
    clock = Clock()
    bucket = TokenBucket(Rate(per_s=10, burst=5), clock)
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]


def test_tokens_come_back_at_the_rate_and_no_further_than_the_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(Rate(per_s=10, burst=5), clock)
    for _ in range(5):
        assert bucket.take()
    clock.t += 0.25  # 2.5 tokens
    assert bucket.take(2)
    assert not bucket.take(1)
    clock.t += 60  # a long quiet spell refills to the burst, not beyond
    assert bucket.take(5)
    assert not bucket.take(1)


def test_a_refused_take_costs_nothing() -> None:
    clock = Clock()
    bucket = TokenBucket(Rate(per_s=1, burst=3), clock)
    assert not bucket.take(4)
    assert bucket.take(3)


def test_a_steady_sender_at_the_rate_is_never_refused() -> None:
    clock = Clock()
    bucket = TokenBucket(Rate(per_s=50, burst=2), clock)
    for _ in range(10_000):
        clock.t += 0.02
        assert bucket.take()


@pytest.mark.parametrize(("per_s", "burst"), [(0, 1), (-1, 5), (1, 0)])
def test_a_rate_that_admits_nothing_is_refused(per_s: float, burst: int) -> None:
    with pytest.raises(ValueError, match="per_s > 0"):
        Rate(per_s, burst)
