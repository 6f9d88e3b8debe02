"""Failed, timed-out and hung step attempts on the real dev server.

Each failed attempt must produce exactly one `task.step.failed.v1` with its
`attempt` and `will_retry`, whoever notices the failure first: the attempt
itself, the next attempt, or the workflow after the last one.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.recorder import EventRecorder
from schemas.registry import is_terminal
from schemas.workflow import TaskWorkflowInput, TaskWorkflowResult
from store import EventStore
from worker.temporal_worker import build_worker


@pytest.fixture(scope="module")
async def client(temporal_address: str) -> Client:
    return await Client.connect(temporal_address, data_converter=pydantic_data_converter)


async def run_task(
    client: Client, recorder: EventRecorder, task_input: dict[str, Any]
) -> tuple[str, TaskWorkflowResult | WorkflowFailureError]:
    task_id = str(uuid.uuid4())
    queue = f"failures-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, recorder, task_queue=queue):
        handle = await client.start_workflow(
            "TaskWorkflow",
            TaskWorkflowInput(task_id=task_id, task_type="demo.pipeline", input=task_input),
            id=f"task-{task_id}",
            task_queue=queue,
            result_type=TaskWorkflowResult,
        )
        try:
            return task_id, await handle.result()
        except WorkflowFailureError as exc:
            return task_id, exc


async def events_of(pool: AsyncConnectionPool, task_id: str) -> list[dict[str, Any]]:
    return [
        orjson.loads(e.envelope_json) for e in await EventStore(pool).history(task_id, limit=1000)
    ]


def assert_invariants(events: list[dict[str, Any]]) -> None:
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert len({e["id"] for e in events}) == len(events)
    terminal = [e for e in events if is_terminal(e["type"])]
    assert len(terminal) == 1
    assert terminal[0] is events[-1]


async def test_a_hung_step_is_timed_out_and_retried(
    client: Client, recorder: EventRecorder, pool: AsyncConnectionPool
) -> None:
    task_id, result = await run_task(
        client,
        recorder,
        {"steps": 2, "step_seconds": 0, "hang_at_step": 1, "step_timeout_seconds": 1},
    )
    assert isinstance(result, TaskWorkflowResult), result
    events = await events_of(pool, task_id)
    assert_invariants(events)
    step1 = [(e["type"], e["data"].get("attempt")) for e in events if e["data"].get("index") == 1]
    assert step1 == [
        ("task.step.started.v1", 1),
        ("task.step.failed.v1", 1),
        ("task.step.started.v1", 2),
        ("task.step.completed.v1", 2),
    ]
    failed = next(e["data"] for e in events if e["type"] == "task.step.failed.v1")
    assert failed["will_retry"] is True


async def test_exhausted_timeouts_fail_the_task_naming_step_and_cause(
    client: Client, recorder: EventRecorder, pool: AsyncConnectionPool
) -> None:
    task_id, result = await run_task(
        client,
        recorder,
        {
            "steps": 2,
            "step_seconds": 0,
            "hang_at_step": 2,
            "hang_attempts": 3,
            "step_timeout_seconds": 1,
        },
    )
    assert isinstance(result, WorkflowFailureError)
    events = await events_of(pool, task_id)
    assert_invariants(events)
    failures = [e["data"] for e in events if e["type"] == "task.step.failed.v1"]
    assert [(f["index"], f["attempt"], f["will_retry"]) for f in failures] == [
        (2, 1, True),
        (2, 2, True),
        (2, 3, False),
    ]
    terminal = events[-1]
    assert terminal["type"] == "task.failed.v1"
    assert terminal["data"]["step"] == 2
    assert "timeout" in terminal["data"]["error"].lower()


async def test_business_failure_is_not_retried(
    client: Client, recorder: EventRecorder, pool: AsyncConnectionPool
) -> None:
    task_id, result = await run_task(
        client, recorder, {"steps": 2, "step_seconds": 0, "fail_at_step": 1}
    )
    assert isinstance(result, WorkflowFailureError)
    events = await events_of(pool, task_id)
    assert_invariants(events)
    starts = [e["data"]["attempt"] for e in events if e["type"] == "task.step.started.v1"]
    assert starts == [1]
    failures = [e["data"] for e in events if e["type"] == "task.step.failed.v1"]
    assert [(f["attempt"], f["will_retry"]) for f in failures] == [(1, False)]
