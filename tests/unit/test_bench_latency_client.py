"""The latency part's measuring conditions: no cyclic GC of the bench during a round,
and the round's WAL-flush figures computed from two `pg_stat_io` readings."""

from __future__ import annotations

import asyncio
import gc

from bench.quiet_client import measuring
from bench.wal_flush import during


async def test_a_round_runs_without_the_cyclic_collector_and_restores_it() -> None:
    assert gc.isenabled()
    async with measuring() as lag:
        assert not gc.isenabled()
        await asyncio.sleep(0)
    assert gc.isenabled()
    summary = lag.summary()
    assert set(summary) == {
        "client_loop_ticks",
        "client_loop_late_over_5ms",
        "client_loop_max_lag_ms",
    }


async def test_the_collector_comes_back_when_the_round_fails() -> None:
    try:
        async with measuring():
            raise RuntimeError("round failed")
    except RuntimeError:
        pass
    assert gc.isenabled()


async def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    try:
        async with measuring():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_wal_syncs_of_a_round_are_the_difference_of_two_readings() -> None:
    assert during((100.0, 250.0), (140.0, 330.0)) == {"wal_syncs": 40, "wal_sync_mean_ms": 2.0}
    assert during((100.0, 250.0), (100.0, 250.0)) == {"wal_syncs": 0, "wal_sync_mean_ms": None}
    assert during(None, (1.0, 1.0)) == {}
