"""Concurrency keys through real workflows (real Temporal dev server, Postgres, Redis):
a task over its key's limit is queued with its position and admitted in order when a
slot frees; `cancel_newest` cancels the newcomer, `cancel_in_progress` the oldest
running task; a task cancelled while queued gives its place back. Every decision is
an event in the task's history (docs/flow-control.md)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from activities.admission import AdmissionActivities, Waker
from activities.recorder import EventRecorder
from schemas.admission import AdmissionRequest, Strategy
from schemas.workflow import SIGNAL_CANCEL, TaskWorkflowInput, workflow_id_for
from store import EventStore
from store.admission import AdmissionStore
from tests.polling import until
from worker.admission_keeper import AdmissionKeeper
from worker.temporal_worker import build_worker

TYPE = "demo.pipeline"


@pytest.fixture(scope="module")
async def client(temporal_address: str) -> Client:
    return await Client.connect(temporal_address, data_converter=pydantic_data_converter)


@pytest.fixture
async def worker(
    client: Client, recorder: EventRecorder, pool: AsyncConnectionPool
) -> AsyncIterator[Worker]:
    store = AdmissionStore(pool, {})
    admission = AdmissionActivities(store, Waker(client, store))
    queue = f"admission-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, recorder, task_queue=queue, admission=admission) as running:
        yield running


async def start(
    client: Client,
    worker: Worker,
    key: str,
    *,
    limit: int = 1,
    strategy: Strategy = "queue",
    seconds: float = 0.2,
) -> str:
    task_id = str(uuid.uuid4())
    request = TaskWorkflowInput(
        task_id=task_id,
        task_type=TYPE,
        input={"steps": 1, "step_seconds": seconds},
        owner="acme",
        concurrency_key=key,
        concurrency_limit=limit,
        concurrency_strategy=strategy,
    )
    await client.start_workflow(
        "TaskWorkflow", request, id=workflow_id_for(task_id), task_queue=worker.task_queue
    )
    return task_id


async def events(pool: AsyncConnectionPool, task_id: str) -> list[dict[str, Any]]:
    return [orjson.loads(e.envelope_json) for e in await EventStore(pool).history(task_id)]


async def types(pool: AsyncConnectionPool, task_id: str) -> list[str]:
    return [e["type"] for e in await events(pool, task_id)]


async def reaches(pool: AsyncConnectionPool, task_id: str, event_type: str) -> None:
    async def seen() -> bool:
        return event_type in await types(pool, task_id)

    await until(seen, within=60, what=f"{event_type} of {task_id}")


async def tickets(pool: AsyncConnectionPool, key: str) -> int:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM admission_tickets WHERE concurrency_key = %s", (key,)
        )
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def no_tickets(pool: AsyncConnectionPool, key: str) -> None:
    """Every slot and place of `key` given back (the release follows the last event)."""

    async def none_left() -> bool:
        return await tickets(pool, key) == 0

    await until(none_left, within=30, what=f"the tickets of {key} to go")


async def test_queued_tasks_start_in_order_with_their_positions(
    client: Client, worker: Worker, pool: AsyncConnectionPool
) -> None:
    key = f"fifo-{uuid.uuid4().hex[:8]}"
    first = await start(client, worker, key, seconds=1.5)
    await reaches(pool, first, "task.step.started.v1")
    waiters = []
    for _ in range(3):
        waiters.append(await start(client, worker, key))
        await reaches(pool, waiters[-1], "task.queued.v1")
    for position, task_id in enumerate(waiters, start=1):
        queued = next(e for e in await events(pool, task_id) if e["type"] == "task.queued.v1")
        assert queued["data"]["position"] == position
        assert queued["data"]["limit"] == 1
        assert queued["data"]["concurrency_key"] == key
    for task_id in waiters:
        await reaches(pool, task_id, "task.completed.v1")
    assert await types(pool, first) == [
        "task.created.v1",
        "task.step.started.v1",
        "task.step.completed.v1",
        "task.completed.v1",
    ]
    assert (await types(pool, waiters[0]))[:3] == [
        "task.created.v1",
        "task.queued.v1",
        "task.admitted.v1",
    ]
    # In line order: each admitted only after the one before it completed.
    chain = [first, *waiters]
    for before, after in itertools.pairwise(chain):
        done = next(e for e in await events(pool, before) if e["type"] == "task.completed.v1")
        admitted = next(e for e in await events(pool, after) if e["type"] == "task.admitted.v1")
        assert done["time"] <= admitted["time"]
    await no_tickets(pool, key)


async def test_cancel_newest_cancels_the_task_over_the_limit(
    client: Client, worker: Worker, pool: AsyncConnectionPool
) -> None:
    key = f"newest-{uuid.uuid4().hex[:8]}"
    first = await start(client, worker, key, strategy="cancel_newest", seconds=1.5)
    await reaches(pool, first, "task.step.started.v1")
    refused = await start(client, worker, key, strategy="cancel_newest")
    await reaches(pool, refused, "task.cancelled.v1")
    ending = (await events(pool, refused))[-1]
    assert "cancel_newest" in ending["data"]["reason"]
    assert await types(pool, refused) == ["task.created.v1", "task.cancelled.v1"]
    handle = client.get_workflow_handle(workflow_id_for(refused))

    async def closed() -> bool:
        return (await handle.describe()).status is WorkflowExecutionStatus.CANCELED

    await until(closed, within=30, what="the refused run to close as Canceled")
    await reaches(pool, first, "task.completed.v1")
    await no_tickets(pool, key)


async def test_cancel_in_progress_stops_the_oldest_for_the_newest(
    client: Client, worker: Worker, pool: AsyncConnectionPool
) -> None:
    key = f"progress-{uuid.uuid4().hex[:8]}"
    old = await start(client, worker, key, strategy="cancel_in_progress", seconds=60)
    await reaches(pool, old, "task.step.started.v1")
    new = await start(client, worker, key, strategy="cancel_in_progress")
    await reaches(pool, old, "task.cancelled.v1")
    assert "cancel_in_progress" in (await events(pool, old))[-1]["data"]["reason"]
    await reaches(pool, new, "task.completed.v1")
    assert "task.admitted.v1" in await types(pool, new)
    await no_tickets(pool, key)


async def test_a_task_cancelled_while_queued_gives_its_place_back(
    client: Client, worker: Worker, pool: AsyncConnectionPool
) -> None:
    key = f"leave-{uuid.uuid4().hex[:8]}"
    first = await start(client, worker, key, seconds=1.5)
    await reaches(pool, first, "task.step.started.v1")
    leaving = await start(client, worker, key)
    await reaches(pool, leaving, "task.queued.v1")
    after = await start(client, worker, key)
    await reaches(pool, after, "task.queued.v1")
    await client.get_workflow_handle(workflow_id_for(leaving)).signal(SIGNAL_CANCEL, "not now")
    await reaches(pool, leaving, "task.cancelled.v1")
    assert await types(pool, leaving) == [
        "task.created.v1",
        "task.queued.v1",
        "task.cancelled.v1",
    ]
    await reaches(pool, after, "task.completed.v1")
    await no_tickets(pool, key)


async def test_the_keeper_frees_a_slot_whose_run_is_gone_and_admits_the_next(
    client: Client, worker: Worker, pool: AsyncConnectionPool
) -> None:
    """A holder with no run in Temporal (its release never came: the store was down, say)
    loses its slot at the keeper's next check, and the waiter behind it runs."""
    key = f"keeper-{uuid.uuid4().hex[:8]}"
    store = AdmissionStore(pool, {})
    ghost = AdmissionRequest(
        task_id=str(uuid.uuid4()), task_type=TYPE, concurrency_key=key, tenant="acme", limit=1
    )
    assert (await store.acquire(ghost)).decision is not None
    waiter = await start(client, worker, key)
    await reaches(pool, waiter, "task.queued.v1")
    waker = Waker(client, store)
    keeper = AdmissionKeeper(client, store, waker, wake_after=5, check_after=0)
    await keeper.round()  # other tests' ghosts in this database go too: counts are >=
    assert keeper.stats.released_closed >= 1
    assert waker.woken >= 1
    await reaches(pool, waiter, "task.completed.v1")
    await no_tickets(pool, key)
