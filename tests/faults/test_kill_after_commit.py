"""A worker SIGKILLed after committing an event and before publishing it → the relay of
the next worker publishes it, and every consumer sees it once.

The window between the commit and the publish lasts well under a millisecond, so the
worker process is told to kill itself exactly there (`TASKPLANE_OUTBOX_TEST_KILL_AFTER_COMMIT`,
a test-only hook: activities/faults.py), right after committing the task's terminal
event. Its SSE clients and the durable handler (in the worker) are waiting for that
event; the next worker's relay publishes it at start-up. Temporal later retries the
recording the dead worker never finished: it finds the event stored and publishes
nothing, so the broker carries the event exactly once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from tests.e2e.conftest import ProcessStack
from tests.faults.harness import (
    BrokerStreamView,
    SSEWatcher,
    collector,
    create_task,
    watch,
)
from tests.invariants import load_history, wait_until_delivered
from tests.metrics_text import required

pytestmark = pytest.mark.e2e

KILL_AT = "task.completed.v1"


@pytest.fixture
async def stack(services: Any, fault_db: str, tmp_path: Path) -> AsyncIterator[ProcessStack]:
    group = f"faults-kill-{uuid.uuid4().hex[:8]}"
    processes = ProcessStack(
        services,
        tmp_path,
        database_url=fault_db,
        outbox_test_kill_after_commit=KILL_AT,
        event_handlers="tests.faults.effects:handler",
        test_fault_group=group,
        handler_claim_idle_seconds="1",
    )
    processes.start("worker")
    processes.start("api")
    try:
        await asyncio.to_thread(processes.wait_ready)
        yield processes
    finally:
        await asyncio.to_thread(processes.stop_all)


async def outbox_row(pool: AsyncConnectionPool, event_id: str) -> tuple[Any, int]:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT published_at, attempts FROM outbox WHERE event_id = %s", (event_id,)
        )
        row = await cursor.fetchone()
    assert row is not None
    return row[0], int(row[1])


async def test_the_relay_publishes_what_a_killed_worker_committed(
    stack: ProcessStack, truth: AsyncConnectionPool, services: Any
) -> None:
    group = stack.env["TASKPLANE_TEST_FAULT_GROUP"]
    stream = BrokerStreamView(services.redis_url)
    watchers: list[SSEWatcher] = []
    try:
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
            await stream.group_ready(group)
            await stream.mark()
            task_id = await create_task(http, {"steps": 2, "step_seconds": 0.2})
            watchers.extend(watch(http, task_id))

            worker = stack.processes["worker"]
            code = await asyncio.to_thread(worker.wait, 30)
            assert code == -9, stack.log_tail("worker")  # SIGKILL, by the hook:
            assert "SIGKILL after commit, before publish" in stack.log_tail("worker")
            stack.processes.pop("worker")

            history = await load_history(truth, [task_id])
            terminal = history[-1]
            assert terminal.type == KILL_AT  # committed ...
            published_at, attempts = await outbox_row(truth, terminal.event_id)
            assert (published_at, attempts) == (None, 0)  # ... and never published
            on_broker = await stream.events([task_id])
            assert terminal.event_id not in {e.event_id for e in on_broker}
            assert all(w.envelopes[-1]["id"] != terminal.event_id for w in watchers if w.envelopes)

            del stack.env["TASKPLANE_OUTBOX_TEST_KILL_AFTER_COMMIT"]
            stack.start("worker")
            collect = collector(truth, [task_id], watchers, group, stream)
            await wait_until_delivered(collect, tasks=[task_id], within=30)
            published_at, attempts = await outbox_row(truth, terminal.event_id)
            assert published_at is not None
            assert attempts == 1  # one publish: the relay's
            assert "relayed pending event" in stack.log_tail("worker")
            for watcher in watchers:
                assert (watcher.status, watcher.error) == (200, None)
            metrics = await http.get(f"http://127.0.0.1:{stack.worker_metrics_port}/metrics")
            assert relay_metric(metrics.text, "taskplane_relay_published_total") >= 1

            # The workflow finishes on the new worker (after Temporal's workflow task
            # timeout): its retried recording is a duplicate and publishes nothing.
            client = await Client.connect(
                services.temporal_address, data_converter=pydantic_data_converter
            )
            await client.get_workflow_handle(f"task-{task_id}").result()
            # (A recording publishes before its activity returns: anything is there by now.)
            copies = [e for e in await stream.events([task_id]) if e == terminal]
            assert len(copies) == 1
            assert await load_history(truth, [task_id]) == history
    finally:
        for watcher in watchers:
            await watcher.stop()
        await stream.close()


def relay_metric(text: str, name: str) -> float:
    return required(text, name)
