"""A task type added from outside the project runs like a built-in one."""

from __future__ import annotations

import uuid

import orjson
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.recorder import EventRecorder
from schemas.tasks import TASK_INPUT_MODELS
from schemas.workflow import TaskWorkflowInput, TaskWorkflowResult
from store import EventStore
from tests.plugin_example import PLUGIN, EchoInput
from worker.temporal_worker import build_worker


async def test_a_plugin_task_type_runs_with_the_same_events(
    temporal_address: str, recorder: EventRecorder, pool: AsyncConnectionPool
) -> None:
    client = await Client.connect(temporal_address, data_converter=pydantic_data_converter)
    queue = f"plugin-{uuid.uuid4().hex[:8]}"
    task_id = str(uuid.uuid4())
    async with build_worker(client, recorder, task_queue=queue, plugins=[PLUGIN]):
        assert TASK_INPUT_MODELS["test.echo"] is EchoInput  # the API would accept it
        result = await client.execute_workflow(
            "TaskWorkflow",
            TaskWorkflowInput(task_id=task_id, task_type="test.echo", input={"words": ["a", "b"]}),
            id=f"task-{task_id}",
            task_queue=queue,
            result_type=TaskWorkflowResult,
        )
    assert result.result == {"words": ["A", "B"]}
    events = [orjson.loads(e.envelope_json) for e in await EventStore(pool).history(task_id)]
    assert [e["type"] for e in events] == [
        "task.created.v1",
        "task.step.started.v1",
        "task.step.completed.v1",
        "task.step.started.v1",
        "task.step.completed.v1",
        "task.completed.v1",
    ]
    assert [e["sequence"] for e in events] == [1, 2, 3, 4, 5, 6]
