"""A task that fails with an error text over 64 KiB still ends with its `task.failed.v1`
(the text capped, the cut marked), on the real dev server, Postgres and Redis."""

from __future__ import annotations

import uuid

import orjson
import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.recorder import EventRecorder
from schemas.size import MAX_TEXT_BYTES
from schemas.workflow import TaskWorkflowInput, workflow_id_for
from store import EventStore
from tests.huge_error_plugin import PLUGIN as HUGE_ERROR
from tests.invariants import find_violations, load_history
from worker.temporal_worker import build_worker


async def test_a_100_kb_error_is_cut_into_the_failed_event(
    temporal_address: str, recorder: EventRecorder, pool: AsyncConnectionPool
) -> None:
    client = await Client.connect(temporal_address, data_converter=pydantic_data_converter)
    task_id = str(uuid.uuid4())
    queue = f"huge-error-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, recorder, task_queue=queue, plugins=[HUGE_ERROR]):
        handle = await client.start_workflow(
            "TaskWorkflow",
            TaskWorkflowInput(task_id=task_id, task_type="test.huge_error", input={}),
            id=workflow_id_for(task_id),
            task_queue=queue,
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    assert (await handle.describe()).status is WorkflowExecutionStatus.FAILED
    history = await load_history(pool, [task_id])
    assert [e.type for e in history] == ["task.created.v1", "task.failed.v1"]
    assert find_violations(history, []) == []
    envelopes = [
        orjson.loads(e.envelope_json) for e in await EventStore(pool).history(task_id, limit=10)
    ]
    error = str(envelopes[-1]["data"]["error"])
    assert len(error.encode()) <= MAX_TEXT_BYTES
    assert error.startswith("HugeError: eeee")
    assert "…[truncated" in error
