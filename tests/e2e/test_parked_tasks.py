"""Parked tasks with the real processes on the real servers (docs/flow-control.md#parked-tasks).

A task created while its key is full waits as a ticket whose workflow has not run (its
history is only its start); it reads and lists as `queued`; it starts in its line's
order when a slot frees, recording `task.created.v1`, `task.queued.v1` (its parked
position) and `task.admitted.v1` in that order; the limit holds, sampled every 100 ms,
through a worker SIGKILL; a parked task an operator terminates (the `temporal` CLI)
reads terminated and gives its place back, and one an operator cancels in Temporal
(which ends the start delay) reads cancelled; no ticket is left."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from schemas.workflow import workflow_id_for
from tests.e2e.conftest import ProcessStack
from tests.e2e.operator_cli import address_of, temporal_cli
from tests.e2e.test_concurrency_keys import (
    _HOLDERS,
    _TICKETS,
    LIMIT,
    Sampler,
    _ended,
    _with_status,
    create,
    limited_stack,
    scalar,
    store_of,
)
from tests.polling import until
from tests.sse import collect_events

pytestmark = pytest.mark.e2e

_PARKED = (
    "SELECT count(*) FROM admission_tickets"
    " WHERE concurrency_key = %(key)s AND parked IS NOT NULL AND task_id = ANY(%(ids)s)"
)
_ADMITTED_ORDER = """
SELECT task_id FROM events WHERE task_id = ANY(%(ids)s) AND event_type = 'task.admitted.v1'
ORDER BY recorded_at
"""
_TYPES = "SELECT event_type FROM events WHERE task_id = %s ORDER BY seq"
_ADMITTED = "SELECT count(*) FROM events WHERE task_id = %(id)s AND event_type = 'task.admitted.v1'"


@pytest.fixture(scope="module")
def parking(services: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessStack]:
    # Parked in Temporal (a run with a start delay) unless a test restarts the API with
    # `store` (`in_the_store`, the default setting).
    folder = tmp_path_factory.mktemp("e2e-parked")
    with limited_stack(services, folder, admission_park_in="temporal") as processes:
        yield processes


@pytest.fixture
async def db(parking: ProcessStack) -> AsyncIterator[AsyncConnectionPool]:
    async with store_of(parking) as pool:
        yield pool


async def _history_types(parking: ProcessStack, task_id: str) -> list[int]:
    namespace = parking.env.get("TASKPLANE_TEMPORAL_NAMESPACE", "default")
    client = await Client.connect(address_of(parking), namespace=namespace)
    handle = client.get_workflow_handle(workflow_id_for(task_id))
    return [event.event_type async for event in handle.fetch_history_events()]


async def test_parked_tasks_wait_outside_the_worker_and_start_in_order(
    parking: ProcessStack, db: AsyncConnectionPool
) -> None:
    key = f"park-{uuid.uuid4().hex[:8]}"
    sampler = Sampler(db, key)
    sampling = asyncio.create_task(sampler.run())
    try:
        async with httpx.AsyncClient(base_url=parking.base_url, timeout=30) as client:
            # The holders outlast every check below (60 one-second steps): the test ends
            # them itself (cancel), so no parked task is admitted before it is looked at.
            holders = [await create(client, key, steps=60) for _ in range(LIMIT)]

            async def full() -> bool:  # both holders took their slot: the key is full
                return await scalar(db, _HOLDERS, {"key": key}) == LIMIT

            await until(full, within=60, what="the holders to take every slot")
            parked = [await create(client, key) for _ in range(5)]
            sampler.ids.extend([*holders, *parked])
            # Parked: a ticket with its start, a run that has not taken a workflow task.
            ids = {"key": key, "ids": parked}
            assert await scalar(db, _PARKED, ids) == len(parked)
            for task_id in parked:
                history = await _history_types(parking, task_id)
                assert history == [EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED]
            assert set(await _with_status(client, parked, "queued", len(parked))) == set(parked)
            listed = await client.get("/tasks", params={"status": "queued", "limit": 100})
            assert set(parked) <= {t["task_id"] for t in listed.json()["tasks"]}
            # An operator terminates one parked task and cancels another in Temporal.
            terminated, cancelled = parked[1], parked[3]
            await temporal_cli(
                address_of(parking),
                *("workflow", "terminate", "--workflow-id", workflow_id_for(terminated)),
                *("--reason", "operator check"),
            )
            await temporal_cli(
                address_of(parking),
                *("workflow", "cancel", "--workflow-id", workflow_id_for(cancelled)),
            )
            # One slot at a time, each next in line admitted before the next slot frees, so
            # the order of their `task.admitted.v1` is the line's order, not a race.
            for holder, admitted in zip(holders, (parked[0], parked[2]), strict=True):
                cancelled_holder = await client.post(f"/tasks/{holder}/cancel")
                assert cancelled_holder.status_code == 202, cancelled_holder.text

                async def in_a_slot(task_id: str = admitted) -> bool:
                    return await scalar(db, _ADMITTED, {"id": task_id}) == 1

                await until(in_a_slot, within=60, what="the next parked task to be admitted")
            parking.stop("worker", kill=True)  # parked[4] waits through it
            parking.start("worker")
            statuses = {task_id: await _ended(client, task_id) for task_id in sampler.ids}
        assert statuses.pop(terminated) == "terminated"
        assert statuses.pop(cancelled) == "cancelled"
        assert [statuses.pop(holder) for holder in holders] == ["cancelled"] * LIMIT
        assert set(statuses.values()) == {"completed"}

        async def slots_free() -> bool:
            return await scalar(db, _TICKETS, {"key": key}) == 0

        await until(slots_free, within=30, what="every ticket of the key to be given back")
        async with db.connection() as conn:
            cursor = await conn.execute(_ADMITTED_ORDER, {"ids": parked})
            order = [str(r[0]) for r in await cursor.fetchall()]
            started = [t for t in parked if t not in (terminated, cancelled)]
            assert order == started  # one tenant, one priority: arrival order
            types = [
                str(r[0]) for r in await (await conn.execute(_TYPES, (started[-1],))).fetchall()
            ]
        assert types[:4] == [
            "task.created.v1",
            "task.queued.v1",
            "task.admitted.v1",
            "task.step.started.v1",
        ]
    finally:
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
    assert sampler.samples > 10
    assert sampler.max_holders == LIMIT
    assert sampler.max_running <= LIMIT


async def test_a_parked_tasks_stream_and_a_bulk_cancel_of_parked_tasks(
    parking: ProcessStack, db: AsyncConnectionPool
) -> None:
    """The stream of a parked task waits, then delivers its line in order; `POST
    /tasks/bulk` cancels parked tasks (its `control` update ends their start delay)."""
    key = f"park-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=parking.base_url, timeout=30) as client:
        holders = [await create(client, key, steps=60) for _ in range(LIMIT)]  # ended below

        async def full() -> bool:
            return await scalar(db, _HOLDERS, {"key": key}) == LIMIT

        await until(full, within=60, what="the holders to take every slot")
        watched = await create(client, key)
        doomed = [await create(client, key) for _ in range(3)]
        assert await scalar(db, _PARKED, {"key": key, "ids": [watched, *doomed]}) == 4
        stream = asyncio.create_task(collect_events(client, f"/tasks/{watched}/events"))
        since = (await client.get(f"/tasks/{doomed[0]}")).json()["created_at"]
        response = await client.post(
            "/tasks/bulk",
            json={
                "action": "cancel",
                "filter": {"status": ["queued"], "concurrency_key": key, "created_after": since},
            },
        )
        assert response.status_code == 202, response.text
        bulk_id = response.json()["id"]

        async def bulk_done() -> bool:
            answer: dict[str, Any] = (await client.get(f"/bulk/{bulk_id}")).json()
            return bool(answer["status"] == "completed")

        await until(bulk_done, within=90, what="the bulk cancel to complete")
        result = (await client.get(f"/bulk/{bulk_id}")).json()
        assert (result["matched"], result["done"], result["failed"]) == (3, 3, 0)
        for task_id in doomed:
            assert await _ended(client, task_id) == "cancelled"
        for task_id in holders:  # only now may the watched task take a slot
            cancelled = await client.post(f"/tasks/{task_id}/cancel")
            assert cancelled.status_code == 202, cancelled.text
        status, frames = await stream
        assert status == 200
        for task_id in holders:
            assert await _ended(client, task_id) == "cancelled"
    types = [frame.event for frame in frames]
    assert types[:4] == [
        "task.created.v1",
        "task.queued.v1",
        "task.admitted.v1",
        "task.step.started.v1",
    ]
    assert types[-1] == "task.completed.v1"

    async def slots_free() -> bool:
        return await scalar(db, _TICKETS, {"key": key}) == 0

    await until(slots_free, within=30, what="every ticket of the key to be given back")
