"""Tasks parked in the store (`TASKPLANE_ADMISSION_PARK_IN=store`, the default) with the
real processes on the real servers (docs/flow-control.md#parked-tasks).

A task created while its key is full has a ticket and a `queued` row and no workflow
at all; it reads, lists and streams as queued; a repeat of its Idempotency-Key answers
200 (422 with another body) and starts nothing; a cancel (the API's, a bulk
operation's) starts its run, which records created/queued/cancelled; an API restart
between park and wake loses nothing; the reconciler leaves it alone; it is started
by its wake-up in its line's order, and the limit holds, sampled every 100 ms,
through a worker SIGKILL; no ticket is left."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from schemas.workflow import workflow_id_for
from tests.e2e.conftest import ProcessStack
from tests.e2e.operator_cli import address_of
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
from tests.e2e.test_parked_tasks import _ADMITTED, _ADMITTED_ORDER, _TYPES
from tests.polling import until
from tests.sse import collect_events

pytestmark = pytest.mark.e2e

_PARKED = (
    "SELECT count(*) FROM admission_tickets WHERE concurrency_key = %(key)s"
    " AND state = 'queued' AND parked IS NOT NULL AND task_id = ANY(%(ids)s)"
)
_BODY = {"type": "demo.pipeline", "input": {"steps": 2, "step_seconds": 1.0}}


@pytest.fixture(scope="module")
def parking(services: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessStack]:
    # The reconciler's store sweep looks at every open task untouched for a second, each
    # second: parked tasks (no run, so NOT_FOUND) included. It must leave them alone.
    folder = tmp_path_factory.mktemp("e2e-parked-store")
    with limited_stack(
        services, folder, reconcile_sweep_seconds="1", reconcile_stale_seconds="1"
    ) as processes:
        yield processes


@pytest.fixture
async def db(parking: ProcessStack) -> AsyncIterator[AsyncConnectionPool]:
    async with store_of(parking) as pool:
        yield pool


async def _has_run(parking: ProcessStack, task_id: str) -> bool:
    namespace = parking.env.get("TASKPLANE_TEMPORAL_NAMESPACE", "default")
    client = await Client.connect(address_of(parking), namespace=namespace)
    try:
        await client.get_workflow_handle(workflow_id_for(task_id)).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def _types(db: AsyncConnectionPool, task_id: str) -> list[str]:
    async with db.connection() as conn:
        rows = await (await conn.execute(_TYPES, (task_id,))).fetchall()
    return [str(r[0]) for r in rows]


async def test_tasks_parked_in_the_store_have_no_run_until_admitted(
    parking: ProcessStack, db: AsyncConnectionPool
) -> None:
    key = f"store-{uuid.uuid4().hex[:8]}"
    sampler = Sampler(db, key)
    sampling = asyncio.create_task(sampler.run())
    try:
        async with httpx.AsyncClient(base_url=parking.base_url, timeout=30) as client:
            holders = [await create(client, key, steps=60) for _ in range(LIMIT)]  # ended below

            async def full() -> bool:
                return await scalar(db, _HOLDERS, {"key": key}) == LIMIT

            await until(full, within=60, what="the holders to take every slot")
            first = await create(client, key)
            repeat_headers = {"Idempotency-Key": f"parked-{uuid.uuid4().hex}"}
            body = {**_BODY, "concurrency_key": key}
            made = await client.post("/tasks", json=body, headers=repeat_headers)
            assert made.status_code == 202, made.text
            keyed = made.json()["task_id"]
            assert made.json()["status"] == "queued"
            one_cancelled = await create(client, key)
            doomed = [await create(client, key) for _ in range(2)]
            parked = [first, keyed, one_cancelled, *doomed]
            sampler.ids.extend([*holders, *parked])
            assert await scalar(db, _PARKED, {"key": key, "ids": parked}) == len(parked)
            for task_id in parked:  # a ticket and a row, no workflow
                assert not await _has_run(parking, task_id)
            assert set(await _with_status(client, parked, "queued", len(parked))) == set(parked)
            listed = await client.get("/tasks", params={"status": "queued", "limit": 100})
            assert set(parked) <= {t["task_id"] for t in listed.json()["tasks"]}
            # A repeat answers the task and starts nothing; another body is refused.
            again = await client.post("/tasks", json=body, headers=repeat_headers)
            assert again.status_code == 200, again.text
            assert (again.json()["task_id"], again.json()["status"]) == (keyed, "queued")
            other = {**body, "input": {"steps": 3, "step_seconds": 1.0}}
            refused = await client.post("/tasks", json=other, headers=repeat_headers)
            assert refused.status_code == 422, refused.text
            assert not await _has_run(parking, keyed)
            # A cancel through the API starts the run, which records its line and the cancel.
            cancelled = await client.post(f"/tasks/{one_cancelled}/cancel")
            assert cancelled.status_code == 202, cancelled.text
            assert await _ended(client, one_cancelled) == "cancelled"
            assert (await _types(db, one_cancelled))[:2] == ["task.created.v1", "task.queued.v1"]
            # A bulk cancel of parked tasks does the same through its `control` calls.
            since = (await client.get(f"/tasks/{doomed[0]}")).json()["created_at"]
            response = await client.post(
                "/tasks/bulk",
                json={
                    "action": "cancel",
                    "filter": {
                        "status": ["queued"],
                        "concurrency_key": key,
                        "created_after": since,
                    },
                },
            )
            assert response.status_code == 202, response.text
            bulk_id = response.json()["id"]

            async def bulk_done() -> bool:
                answer: dict[str, Any] = (await client.get(f"/bulk/{bulk_id}")).json()
                return bool(answer["status"] == "completed")

            await until(bulk_done, within=90, what="the bulk cancel to complete")
            result = (await client.get(f"/bulk/{bulk_id}")).json()
            assert (result["matched"], result["done"], result["failed"]) == (2, 2, 0)
            for task_id in doomed:
                assert await _ended(client, task_id) == "cancelled"
            # The API restarts between park and wake; the reconciler (its sweep every
            # second, its keeper checking slot holders after 1 s) has seen them meanwhile.
            parking.stop("api")
            parking.start("api")
            parking.wait_ready()
            for task_id in (first, keyed):
                assert not await _has_run(parking, task_id)
            assert await scalar(db, _PARKED, {"key": key, "ids": [first, keyed]}) == 2
            assert set(await _with_status(client, [first, keyed], "queued", 2)) == {first, keyed}
            # Its stream waits with nothing to send (the restart cut any stream before it).
            stream = asyncio.create_task(collect_events(client, f"/tasks/{first}/events"))
            # One slot at a time: the wake-ups start the runs in the line's order. The
            # worker is killed as the second holder ends: its release and the wake-up it
            # sends happen before the kill or are redone after it (activity, keeper).
            for holder, admitted in zip(holders, (first, keyed), strict=True):
                ended = await client.post(f"/tasks/{holder}/cancel")
                assert ended.status_code == 202, ended.text
                if admitted == keyed:
                    parking.stop("worker", kill=True)
                    parking.start("worker")

                async def in_a_slot(task_id: str = admitted) -> bool:
                    return await scalar(db, _ADMITTED, {"id": task_id}) == 1

                await until(in_a_slot, within=60, what="the next parked task to be admitted")
            statuses = {task_id: await _ended(client, task_id) for task_id in (first, keyed)}
            status, frames = await stream
        assert statuses == {first: "completed", keyed: "completed"}
        assert status == 200
        expected = ["task.created.v1", "task.queued.v1", "task.admitted.v1", "task.step.started.v1"]
        assert [frame.event for frame in frames][:4] == expected
        assert (await _types(db, keyed))[:4] == expected

        async def slots_free() -> bool:
            return await scalar(db, _TICKETS, {"key": key}) == 0

        await until(slots_free, within=30, what="every ticket of the key to be given back")
        async with db.connection() as conn:
            cursor = await conn.execute(_ADMITTED_ORDER, {"ids": parked})
            assert [str(r[0]) for r in await cursor.fetchall()] == [first, keyed]
    finally:
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
    assert sampler.samples > 10
    assert sampler.max_holders == LIMIT
    assert sampler.max_running <= LIMIT
