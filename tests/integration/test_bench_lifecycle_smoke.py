"""The lifecycle bench part must not rot: a few tasks through it, on a database of its own.

Structure only (every table a task writes is measured, pruning empties them, the
report renders); no size or timing is asserted. The figures are `make bench`'s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench import lifecycle
from bench.context import BenchContext, Sizes
from bench.lifecycle_report import render
from bench.stack import Endpoints
from broker.redis import RedisBroker
from settings import Settings
from store import open_pool
from temporal.client import connect_client
from tests.own_database import own_database

pytestmark = pytest.mark.bench


@pytest.fixture
async def ctx(
    database_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> AsyncIterator[BenchContext]:
    async with own_database(database_url, "bench_lifecycle") as url:
        endpoints = Endpoints(url, redis_url, temporal_address)
        pool = await open_pool(url, min_size=1, max_size=4)
        broker = RedisBroker(redis_url)
        await broker.connect()
        client = await connect_client(
            Settings(database_url=url, redis_url=redis_url, temporal_address=temporal_address)
        )
        sizes = Sizes.quick().override(
            ["lifecycle_tasks=4", "lifecycle_rounds=2", "lifecycle_steps=1"]
        )
        yield BenchContext(endpoints, client, pool, broker, tmp_path, sizes)
        await broker.close()
        await pool.close()


async def test_lifecycle_measures_every_table_a_task_writes_and_prunes_them(
    ctx: BenchContext,
) -> None:
    result = await lifecycle.run(ctx)

    assert result["events_per_task"] == 4
    plain, extras = result["variants"]["plain"], result["variants"]["handler_webhook"]
    assert len(plain["rounds"]) == 2
    assert len(extras["rounds"]) == 1
    # Rows per task, read from the catalogue's tables, not from a list in the bench.
    assert plain["per_task"]["events"]["rows"] == 4
    assert plain["per_task"]["outbox"]["rows"] == 4
    assert plain["per_task"]["tasks"]["rows"] == 1
    assert plain["per_task"]["task_owners"]["rows"] == 1
    assert "webhook_deliveries" not in plain["per_task"]
    # Partitions (events_<bound>, events_default) are summed under their parent.
    assert not any(name.startswith("events_") for name in plain["per_task"])
    assert extras["per_task"]["webhook_endpoints"]["rows"] == 1
    assert extras["per_task"]["webhook_deliveries"]["rows"] == 4
    assert extras["per_task"]["processed_events"]["rows"] >= 4
    assert extras["webhook_requests_received"] >= 4 * 4
    for variant in (plain, extras):
        for round_ in variant["rounds"]:
            assert round_["pruned_rows"]["tasks"] == 4
            after = round_["tables_after_vacuum"]
            # Events stay in their time partition until it is dropped (not in a round).
            assert after["tasks"]["rows"] == 0
            assert after["outbox"]["rows"] == 0
            assert after["task_owners"]["rows"] == 0
            assert round_["per_task_total_bytes"] > 0
    assert any(line.startswith("events") for line in render(result))
