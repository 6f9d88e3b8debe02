"""Retention seen from the API, on real servers (a database of each test's own): a
pruned task answers 404 everywhere even while Temporal still has its workflow, and the
rows a refused start left behind (owner, webhook) are removed by the pruner."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from schemas import EventEnvelope
from schemas.workflow import workflow_id_for
from store import EventStore, open_pool
from tests.faults.proxy import fault_proxy
from tests.integration.live_api import live_api
from tests.own_database import own_database
from worker.pruner import Pruner, RetentionPolicy, temporal_knows

pytestmark = pytest.mark.timeout(120)

TASK = {"type": "demo.pipeline", "input": {"steps": 1, "step_seconds": 0}}
WEBHOOK = {"url": "http://93.184.215.14/hooks/taskplane"}  # public; never called here


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[tuple[str, AsyncConnectionPool]]:
    async with own_database(database_url, "retention_api") as url:
        pool = await open_pool(url, min_size=1, max_size=4)
        try:
            yield url, pool
        finally:
            await pool.close()


@pytest.fixture
async def client(temporal_address: str) -> Client:
    return await Client.connect(temporal_address, data_converter=pydantic_data_converter)


def _event(task_id: str, event_type: str, data: dict[str, Any]) -> EventEnvelope:
    return EventEnvelope(
        id=str(uuid.uuid4()), type=event_type, subject=task_id, time=datetime.now(UTC), data=data
    )


async def _rows(pool: AsyncConnectionPool, table: str, task_id: str) -> int:
    async with pool.connection() as conn:
        cursor = await conn.execute(f"SELECT count(*) FROM {table} WHERE task_id = %s", (task_id,))
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def test_a_pruned_task_answers_404_everywhere_while_temporal_still_has_it(
    db: tuple[str, AsyncConnectionPool], redis_url: str, temporal_address: str, client: Client
) -> None:
    url, pool = db
    async with (
        live_api(
            database_url=url,
            redis_url=redis_url,
            temporal_address=temporal_address,
            task_queue=f"nobody-{uuid.uuid4().hex[:8]}",  # Temporal keeps it, open
        ) as api,
        httpx.AsyncClient(base_url=api.url, timeout=30) as http,
    ):
        key = {"Idempotency-Key": str(uuid.uuid4())}
        created = await http.post("/tasks", json={**TASK, "webhook": WEBHOOK}, headers=key)
        assert created.status_code == 202, created.text
        task_id = created.json()["task_id"]
        try:
            # It ran and closed, as far as the store knows; its workflow stays in Temporal.
            store = EventStore(pool)
            await store.append(
                _event(task_id, "task.created.v1", {"task_type": "demo.pipeline", "input": {}})
            )
            await store.append(_event(task_id, "task.completed.v1", {"result": {}}))
            assert (await http.get(f"/tasks/{task_id}")).json()["status"] == "completed"
            async with pool.connection() as conn:
                await conn.execute(
                    "UPDATE tasks SET created_at = now() - interval '40 days',"
                    " updated_at = now() - interval '40 days' WHERE task_id = %s",
                    (task_id,),
                )
            counts = await Pruner(pool, temporal_knows(client), RetentionPolicy()).round()
            assert counts is not None
            assert counts.task_ids == [task_id]
            await client.get_workflow_handle(workflow_id_for(task_id)).describe()  # still there

            for method, path in (
                ("GET", ""),
                ("GET", "/history"),
                ("GET", "/events"),
                ("GET", "/webhook"),
                ("POST", "/stream-token"),
                ("POST", "/cancel"),
                ("POST", "/pause"),
                ("POST", "/resume"),
            ):
                response = await http.request(method, f"/tasks/{task_id}{path}")
                assert response.status_code == 404, (method, path, response.text)
            listed = (await http.get("/tasks")).json()["tasks"]
            assert task_id not in {t["task_id"] for t in listed}
            # The same Idempotency-Key names the pruned task: refused, not started again.
            again = await http.post("/tasks", json=TASK, headers=key)
            assert again.status_code == 409, again.text
            assert "pruned" in again.json()["detail"]
            assert await _rows(pool, "task_owners", task_id) == 0
        finally:
            await client.get_workflow_handle(workflow_id_for(task_id)).terminate("test over")


async def test_the_rows_of_a_refused_start_are_removed_a_pending_task_is_kept(
    db: tuple[str, AsyncConnectionPool], redis_url: str, temporal_address: str, client: Client
) -> None:
    url, pool = db
    host, port = temporal_address.rsplit(":", 1)
    async with (
        fault_proxy(host=host, port=int(port)) as proxy,
        live_api(
            database_url=url,
            redis_url=redis_url,
            temporal_address=f"127.0.0.1:{proxy.port}",
            task_queue=f"nobody-{uuid.uuid4().hex[:8]}",  # started, never run: pending
        ) as api,
        httpx.AsyncClient(base_url=api.url, timeout=60) as http,
    ):
        started = await http.post("/tasks", json={**TASK, "webhook": WEBHOOK})
        assert started.status_code == 202, started.text
        pending = started.json()["task_id"]
        await proxy.outage()
        refused = await http.post("/tasks", json={**TASK, "webhook": WEBHOOK})
        assert refused.status_code == 503, refused.text
        await proxy.restore()
    try:
        async with pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT task_id FROM task_owners WHERE task_id <> %s", (pending,)
            )
            rows = await cursor.fetchall()
        assert len(rows) == 1, "the refused start left no owner row"
        orphan = str(rows[0][0])
        for table in ("task_owners", "webhook_endpoints", "unstarted_tasks"):
            assert await _rows(pool, table, orphan) == 1, table

        pruner = Pruner(pool, temporal_knows(client), RetentionPolicy(orphan_grace_seconds=0))
        counts = await pruner.round()

        assert counts is not None
        assert counts.task_ids == [orphan]
        for table in ("task_owners", "webhook_endpoints", "unstarted_tasks"):
            assert await _rows(pool, table, orphan) == 0, table
            assert await _rows(pool, table, pending) == 1, table  # Temporal has it: kept
        assert pruner.stats.orphans == 1
        await pruner.round()
        assert pruner.stats.orphans == 1
    finally:
        await client.get_workflow_handle(workflow_id_for(pending)).terminate("test over")


async def test_an_id_claimed_within_the_grace_period_is_not_an_orphan(
    db: tuple[str, AsyncConnectionPool], client: Client
) -> None:
    """A repeat of the creating request claims the id again: the grace starts over."""
    _, pool = db
    from store.tenants import TaskOwners

    task_id = str(uuid.uuid4())  # no workflow: an orphan once its grace has passed
    assert await TaskOwners(pool).claim(task_id, "default") == "default"
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE unstarted_tasks SET claimed_at = now() - interval '2 hours' WHERE task_id = %s",
            (task_id,),
        )
    assert await TaskOwners(pool).claim(task_id, "default") == "default"  # the repeat
    pruner = Pruner(pool, temporal_knows(client), RetentionPolicy(orphan_grace_seconds=3600))
    await pruner.round()
    assert await _rows(pool, "task_owners", task_id) == 1
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE unstarted_tasks SET claimed_at = now() - interval '2 hours' WHERE task_id = %s",
            (task_id,),
        )
    await pruner.round()
    assert await _rows(pool, "task_owners", task_id) == 0
