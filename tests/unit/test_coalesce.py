"""Progress coalescing (activities/coalesce.py) on a clock the test moves."""

from __future__ import annotations

import pytest

from activities.coalesce import Coalescer, RateGates


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_passes_then_the_rate_holds() -> None:
    clock = Clock()
    gates = RateGates(4.0, burst=3, clock=clock)  # powers of two: exact float steps
    assert [gates.take("t") for _ in range(4)] == [True, True, True, False]
    clock.now += 0.125  # half a token
    assert not gates.take("t")
    clock.now += 0.125
    assert gates.take("t")
    assert not gates.take("t")
    assert gates.take("other")  # every task has its own bucket


def test_the_latest_value_wins_and_the_last_is_flushed() -> None:
    clock = Clock()
    gates = RateGates(4.0, burst=1, clock=clock)
    step = Coalescer[float](gates, "t")
    assert step.offer(1.0) == 1.0  # the first value passes
    assert step.offer(2.0) is None
    assert step.offer(3.0) is None  # replaces 2.0
    clock.now += 0.25
    assert step.offer(4.0) == 4.0  # the gate opened: the newest value, 3.0 is lost
    assert step.offer(5.0) is None
    assert step.offer(100.0) is None
    assert step.flush() == 100.0  # the step ends: its last value gets out
    assert step.flush() is None
    assert (step.coalesced, gates.stats.coalesced) == (3, 3)  # 2.0, 3.0 and 5.0


def test_each_steps_first_value_passes_even_when_the_task_gate_is_shut() -> None:
    clock = Clock()
    gates = RateGates(1.0, burst=1, clock=clock)
    first, second = Coalescer[int](gates, "t"), Coalescer[int](gates, "t")
    assert first.offer(1) == 1
    assert first.offer(2) is None
    assert second.offer(1) == 1  # a new step shows at once
    assert second.offer(2) is None
    assert (first.flush(), second.flush()) == (2, 2)


def test_rate_zero_coalesces_nothing() -> None:
    gates = RateGates(0.0, clock=Clock())
    step = Coalescer[int](gates, "t")
    assert not gates.enabled
    assert [step.offer(n) for n in range(50)] == list(range(50))
    assert step.flush() is None
    assert gates.stats.coalesced == 0


def test_buckets_that_filled_up_again_are_dropped() -> None:
    clock = Clock()
    gates = RateGates(100.0, burst=1, clock=clock)
    for n in range(1024):
        gates.take(f"old-{n}")
    clock.now += 1.0  # every bucket is full again: the same as a new one
    gates.take("new")
    assert len(gates) == 1


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_rate"):
        RateGates(-1.0)
    with pytest.raises(ValueError, match="burst"):
        RateGates(1.0, burst=0)
