"""Coalescing of frequent values (progress) to at most a rate per task: the latest wins.

Two small pieces, no Temporal and no I/O, so any emitter can use them (the step
events here, the task-code authoring API's progress and output streams):

- `RateGates(max_rate, burst=…)`: one token bucket per key (a task id) in this
  process: `burst` values pass at once, then `max_rate` a second. A bucket that has
  filled up again is the same as a new one, so those are dropped and memory follows
  the tasks active right now. (The burst keeps a short task's few values, and ticks
  that bunch up when the machine is busy, from being coalesced for no reason.)
- `Coalescer(gates, key)`: what one emitter (a step attempt) offers. `offer(value)`
  returns the value to record now, or None: it is held, and replaced by the next
  offer (that one counts as coalesced). `flush()` returns the held value, to record
  before a boundary (the step's end), so the last value always gets out. The first
  offer of a coalescer always passes, so each step's first value shows at once.

Usage::

    coalescer = Coalescer(gates, task_id)
    for value in values:
        if (now := coalescer.offer(value)) is not None:
            await record(now)
    if (last := coalescer.flush()) is not None:
        await record(last)

The rate is per task and per process: steps of one task running on several workers
each keep to it. `max_rate` 0 turns coalescing off (every offer passes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

# Drop full buckets when this many are held (a sweep is O(buckets), so not on every take).
_SWEEP_AT = 1024


@dataclass
class CoalesceStats:
    coalesced: int = 0  # values never recorded because a later one replaced them


class RateGates:
    """Token buckets per key: `max_rate` passes a second, after a `burst` of passes."""

    def __init__(
        self,
        max_rate: float,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_rate < 0 or burst < 1:
            raise ValueError("max_rate must be >= 0 (0: no coalescing) and burst >= 1")
        self.max_rate = max_rate
        self.burst = burst
        self._clock = clock
        # key -> (tokens, when counted); a full bucket is dropped: a new one is the same.
        self._buckets: dict[str, tuple[float, float]] = {}
        self.stats = CoalesceStats()

    @property
    def enabled(self) -> bool:
        return self.max_rate > 0

    def take(self, key: str, *, force: bool = False) -> bool:
        """Pass through `key`'s gate now, if a token is left or `force`d (which takes one
        if there is one); False when the bucket is empty."""
        if not self.enabled:
            return True
        now = self._clock()
        tokens = self._tokens(key, now)
        if tokens < 1 and not force:
            return False
        if len(self._buckets) >= _SWEEP_AT:
            self._buckets = {
                k: v for k, v in self._buckets.items() if self._tokens(k, now) < self.burst
            }
        self._buckets[key] = (max(tokens - 1, 0.0), now)
        return True

    def _tokens(self, key: str, now: float) -> float:
        held = self._buckets.get(key)
        if held is None:
            return float(self.burst)
        tokens, since = held
        return min(float(self.burst), tokens + (now - since) * self.max_rate)

    def __len__(self) -> int:
        return len(self._buckets)


class Coalescer(Generic[T]):
    """One emitter's values through the gate of `key`: the latest wins (module docstring)."""

    def __init__(self, gates: RateGates, key: str) -> None:
        self._gates = gates
        self._key = key
        self._first = True
        self._held: tuple[T] | None = None  # a 1-tuple, so a held None is still held
        self.coalesced = 0  # this emitter's share of `gates.stats.coalesced`

    def offer(self, value: T) -> T | None:
        if self._held is not None:
            self._count_lost()  # replaced by `value`, whether it passes or is held
        if self._gates.take(self._key, force=self._first):
            self._first = False
            self._held = None
            return value
        self._held = (value,)
        return None

    def flush(self) -> T | None:
        """The held value (to record now), if any; the gate is not consulted."""
        held, self._held = self._held, None
        return None if held is None else held[0]

    @property
    def holding(self) -> bool:
        return self._held is not None

    def _count_lost(self) -> None:
        self.coalesced += 1
        self._gates.stats.coalesced += 1
