"""Tests for harness.world.clock."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.world.clock import DEFAULT_START, FakeClock


def test_starts_at_the_fixed_epoch() -> None:
    assert FakeClock().now() == DEFAULT_START
    assert FakeClock(10.0).now() == 10.0


def test_sleep_advances_and_counts_as_slept() -> None:
    clock = FakeClock(0.0)
    clock.sleep(2.5)
    clock.advance(1.0)
    assert clock.now() == 3.5
    assert clock.slept == 2.5


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
@pytest.mark.parametrize("verb", ["sleep", "advance"])
def test_rejects_negative_or_non_finite(verb: str, bad: float) -> None:
    clock = FakeClock(0.0)
    with pytest.raises(ValueError, match=rf"FakeClock\.{verb}\(\) needs a finite, non-negative"):
        getattr(clock, verb)(bad)
    assert clock.now() == 0.0


def test_rejects_a_non_finite_start() -> None:
    with pytest.raises(ValueError, match="finite number of seconds"):
        FakeClock(float("nan"))


@given(st.lists(st.floats(min_value=0, max_value=1e6), max_size=30))
def test_time_is_monotonic_and_sums_the_sleeps(steps: list[float]) -> None:
    clock = FakeClock(0.0)
    last = clock.now()
    for step in steps:
        clock.sleep(step)
        assert clock.now() >= last
        last = clock.now()
    assert clock.now() == pytest.approx(sum(steps))


def test_concurrent_sleeps_are_not_lost() -> None:
    clock = FakeClock(0.0)

    def work() -> None:
        for _ in range(1000):
            clock.sleep(1.0)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert clock.now() == 4000.0
    assert clock.slept == 4000.0
