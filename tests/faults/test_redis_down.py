"""Redis down while tasks run → the tasks keep running, and every event reaches the broker
once Redis is back, each seen once by every SSE client and by the durable handler.

The worker, the API and the observers all use a Redis of this test's own, which it
stops (SIGTERM; its append-only file keeps the stream and the consumer groups) and
starts again on the same port. While it is down the recorder hands each event to the
relay, which backs off; the first publish that works again wakes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool

from devstack import EmbeddedRedis
from devstack.ports import free_port
from tests.faults.harness import (
    BrokerStreamView,
    SSEWatcher,
    collector,
    create_task,
    fault_settings,
    pending_rows,
    watch,
    worker_and_api,
)
from tests.invariants import load_history, wait_until_delivered
from tests.polling import until

LONGER_TASK = {"steps": 3, "step_seconds": 0.6, "progress_ticks": 3}


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis", port=free_port(), log_path=tmp_path / "redis.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_tasks_run_through_a_redis_outage_and_every_event_gets_through(
    own_redis: EmbeddedRedis, truth: AsyncConnectionPool, fault_db: str, temporal_address: str
) -> None:
    settings = fault_settings(
        database_url=fault_db,
        redis_url=own_redis.url,
        temporal_address=temporal_address,
        relay_backlog_seconds=0.2,
    )
    group = f"faults-redis-{settings.task_queue}"
    stream = BrokerStreamView(own_redis.url)
    watchers: list[SSEWatcher] = []
    try:
        async with worker_and_api(settings, stream, group=group, sse_heartbeat_seconds=0.5) as (
            worker,
            http,
        ):
            task_ids = [await create_task(http, LONGER_TASK) for _ in range(2)]
            watchers.extend(w for task_id in task_ids for w in watch(http, task_id))

            async def stored() -> int:
                return len(await load_history(truth, task_ids))

            async def both_running() -> bool:
                return await stored() >= 4

            await until(both_running, within=20)
            await asyncio.to_thread(own_redis.stop)
            down_at = await stored()

            async def recorded_while_down() -> bool:
                return await stored() >= down_at + 4 and worker.relay.stats.pending > 0

            await until(recorded_while_down, within=20, what="events recorded while Redis is down")
            assert await pending_rows(truth, task_ids) > 0  # waiting in the outbox

            async def relay_tried_and_failed() -> bool:  # woken by the first hand over
                return worker.relay.stats.failed >= 1

            await until(relay_tried_and_failed, within=20)
            relayed_before = worker.relay.stats.published
            await asyncio.to_thread(own_redis.start)  # same port, same append-only file

            collect = collector(truth, task_ids, watchers, group, stream)
            history, _ = await wait_until_delivered(collect, tasks=task_ids, within=40)
            last = {e.task_id: e.type for e in history}  # in sequence order: the last wins
            assert set(last.values()) == {"task.completed.v1"}
            assert await pending_rows(truth, task_ids) == 0
            assert worker.relay.stats.published > relayed_before  # the backlog went by relay

            async def backlog_metric_cleared() -> bool:
                return worker.relay.stats.pending == 0

            await until(
                backlog_metric_cleared, within=20, what="the pending-rows gauge to drop to 0"
            )
            for watcher in watchers:
                assert (watcher.status, watcher.error) == (200, None)
    finally:
        for watcher in watchers:
            await watcher.stop()
        await stream.close()
