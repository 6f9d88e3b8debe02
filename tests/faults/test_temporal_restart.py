"""The Temporal server restarts while tasks run → the worker reconnects and the tasks finish.

A dev server of this test's own (its SQLite file keeps the workflows across the
restart) serves the in-process worker and the API. It is stopped while two tasks
are running and started again on the same port after a moment. Callers keep
asking the API meanwhile: what needs Temporal answers 503 with Retry-After while
it is away (never a 500). Afterwards every task has completed, and the store's
history, two SSE clients per task and the durable handler pass `tests.invariants`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool

from devstack.ports import free_port
from devstack.temporal import TemporalDevServer
from tests.faults.common import Callers, delivered_and_no_500
from tests.faults.harness import (
    BrokerStreamView,
    SSEWatcher,
    create_task,
    fault_settings,
    watch,
    worker_and_api,
)
from tests.invariants import load_history
from tests.polling import until

pytestmark = pytest.mark.timeout(180)

TASK = {"steps": 3, "step_seconds": 0.5, "progress_ticks": 2}
AWAY_SECONDS = 1.0


@pytest.fixture
def own_temporal(tmp_path: Path) -> Iterator[TemporalDevServer]:
    server = TemporalDevServer(
        tmp_path / "temporal", free_port(), None, log_path=tmp_path / "temporal.log"
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_the_worker_reconnects_after_a_temporal_restart_and_the_tasks_finish(
    own_temporal: TemporalDevServer,
    truth: AsyncConnectionPool,
    fault_db: str,
    redis_url: str,
) -> None:
    settings = fault_settings(
        database_url=fault_db,
        redis_url=redis_url,
        temporal_address=own_temporal.address,
        temporal_rpc_timeout_seconds=1.0,
    )
    group = f"faults-temporal-restart-{settings.task_queue}"
    stream = BrokerStreamView(redis_url)
    watchers: list[SSEWatcher] = []
    try:
        async with worker_and_api(
            settings, stream, group=group, temporal_rpc_timeout_seconds=1.0
        ) as (_worker, http):
            callers = Callers(http)
            task_ids = [await create_task(http, TASK) for _ in range(2)]
            watchers.extend(w for task_id in task_ids for w in watch(http, task_id))

            async def both_running() -> bool:
                return len(await load_history(truth, task_ids)) >= 4

            await until(both_running, within=20)
            await asyncio.to_thread(own_temporal.stop)
            stopped = time.monotonic()
            await callers.keep_asking(task_ids, AWAY_SECONDS)
            unavailable = [s for _, s in callers.statuses if s == 503]
            await asyncio.to_thread(own_temporal.start)  # same port, same SQLite file
            away = time.monotonic() - stopped

            await callers.keep_asking(task_ids, 0.5)
            await delivered_and_no_500(
                truth,
                task_ids,
                watchers,
                group,
                stream,
                callers,
                allowed=frozenset({503}),
                within=90,
            )
            # While Temporal was away, reading a task (it asks Temporal) said 503.
            assert unavailable, callers.statuses
            # Figures, not limits (the machine is shared).
            print(f"temporal away {away:.1f} s")  # noqa: T201
    finally:
        for watcher in watchers:
            await watcher.stop()
        await stream.close()
