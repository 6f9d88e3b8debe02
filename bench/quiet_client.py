"""Keep the bench's measuring clients from stalling themselves, and show when they did.

The latency part's clients run in the bench process: a receipt is stamped when
the bench's event loop gets to the socket, so any pause of this process counts as
latency of every event still in flight. Python's cyclic garbage collector was one:
a gen-2 collection of the bench's heap (the frames of earlier rounds, the
Temporal client) took 42 to 501 ms here and landed inside a measured round
(docs/performance.md, "Commit → SSE tail (session 9)"). That is the measuring
client's pause, not the product's, so a round runs with the collector off (after
one collection beforehand, so nothing is owed); reference counting still frees
everything that is not a cycle, and the collector runs again right after.

The loop-lag probe records how late a 10 ms timer of this loop fired: a late
timer is a late receipt, so a round that reports lag was partly measuring the
bench (or the machine), and the figures say so instead of blaming the product.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

PROBE_PERIOD = 0.010
REPORTED_LAG = 0.005  # lateness worth counting (s): half the commit → client target


@dataclass
class LoopLag:
    """How late this process's event loop ran a periodic timer during a round."""

    late: list[float] = field(default_factory=list)  # lateness (s) of timers over REPORTED_LAG
    ticks: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "client_loop_ticks": self.ticks,
            "client_loop_late_over_5ms": len(self.late),
            "client_loop_max_lag_ms": round(max(self.late, default=0.0) * 1000, 3),
        }


@asynccontextmanager
async def measuring() -> AsyncIterator[LoopLag]:
    """A measured round: no cyclic GC in this process, and its loop's lag recorded."""
    lag = LoopLag()
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    probe = asyncio.create_task(_probe(lag), name="bench-loop-lag")
    try:
        yield lag
    finally:
        probe.cancel()
        await asyncio.gather(probe, return_exceptions=True)
        if was_enabled:
            gc.enable()


async def _probe(lag: LoopLag) -> None:
    loop = asyncio.get_running_loop()
    due = loop.time() + PROBE_PERIOD
    while True:
        await asyncio.sleep(max(due - loop.time(), 0.0))
        late = loop.time() - due
        lag.ticks += 1
        if late > REPORTED_LAG:
            lag.late.append(late)
        due = loop.time() + PROBE_PERIOD
