"""A task whose workflow task keeps failing, seen through the API on real servers.

Its workflow cannot answer the status query (no workflow task ever completed), so
pause, resume and cancel answer 409 problem+json saying why, never a bare 500;
`GET /tasks/{id}` answers and, once the reconciler has looked, says since when
the workflow task fails.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from activities.recorder import EventRecorder
from schemas.workflow import TaskWorkflowInput, workflow_id_for
from tests.integration.live_api import live_api
from tests.invariants import load_history
from tests.polling import until
from tests.wedged_plugin import PLUGIN as WEDGED
from worker.reconciler import Reconciler
from worker.temporal_worker import build_worker


@pytest.fixture
async def client(temporal_address: str) -> Client:
    return await Client.connect(temporal_address, data_converter=pydantic_data_converter)


@pytest.fixture
async def worker(client: Client, recorder: EventRecorder) -> AsyncIterator[Worker]:
    queue = f"wedged-api-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, recorder, task_queue=queue, plugins=[WEDGED]) as running:
        yield running


async def test_controlling_a_wedged_task_answers_409_with_the_reason(
    client: Client,
    worker: Worker,
    recorder: EventRecorder,
    pool: AsyncConnectionPool,
    database_url: str,
    redis_url: str,
    temporal_address: str,
) -> None:
    task_id = str(uuid.uuid4())
    handle = await client.start_workflow(
        "TaskWorkflow",
        TaskWorkflowInput(task_id=task_id, task_type="test.wedged", input={}),
        id=workflow_id_for(task_id),
        task_queue=worker.task_queue,
    )

    async def failed_twice() -> bool:
        return bool(await load_history(pool, [task_id])) and (
            (await handle.describe()).raw_description.pending_workflow_task.attempt >= 2
        )

    await until(failed_twice, within=30, what="the workflow task to fail twice")
    reconciler = Reconciler(client, pool, recorder, lookback=3600, sweep_every=0, stale_after=0)
    await reconciler.round()
    try:
        async with (
            live_api(
                database_url=database_url, redis_url=redis_url, temporal_address=temporal_address
            ) as api,
            httpx.AsyncClient(base_url=api.url, timeout=60) as http,
        ):
            shown = await http.get(f"/tasks/{task_id}")
            assert shown.status_code == 200, shown.text
            assert shown.json()["status"] == "running"
            assert shown.json()["workflow_task_failing_since"] is not None
            for action in ("pause", "resume", "cancel"):
                response = await http.post(f"/tasks/{task_id}/{action}")
                assert response.status_code == 409, (action, response.text)
                assert response.headers["content-type"] == "application/problem+json"
                detail = response.json()["detail"]
                assert "cannot be controlled now" in detail, detail
    finally:
        await handle.terminate(reason="test over")
