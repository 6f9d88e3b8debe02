"""A day-long wait for an input, on Temporal's time-skipping test server: nobody
answers, the deadline passes in virtual time, and the task fails saying which input
was missing (the default of `wait_for_input`), with the events in the real store."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import orjson
import pytest
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from activities.recorder import EventRecorder
from schemas.workflow import TaskWorkflowInput, TaskWorkflowResult
from store import EventStore
from worker.temporal_worker import build_worker


async def test_nobody_answers_within_a_day_and_the_task_fails_clearly(
    time_skipping: WorkflowEnvironment, recorder: EventRecorder, pool: Any
) -> None:
    task_id, queue = str(uuid.uuid4()), f"ts-{uuid.uuid4().hex[:8]}"
    virtual_start = await time_skipping.get_current_time()
    async with build_worker(time_skipping.client, recorder, task_queue=queue):
        handle = await time_skipping.client.start_workflow(
            "TaskWorkflow",
            TaskWorkflowInput(task_id=task_id, task_type="demo.approval", input={}),
            id=f"task-{task_id}",
            task_queue=queue,
            result_type=TaskWorkflowResult,
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    assert await time_skipping.get_current_time() - virtual_start >= timedelta(days=1)
    events = [orjson.loads(e.envelope_json) for e in await EventStore(pool).history(task_id)]
    assert [e["type"] for e in events[-3:]] == [
        "task.input.requested.v1",
        "task.input.received.v1",
        "task.failed.v1",
    ]
    assert events[-2]["data"] == {
        "name": "approve",
        "value": None,
        "timed_out": True,
        "via": None,
        "delivery_id": None,
    }
    assert events[-1]["data"]["error"] == "InputTimedOut: input 'approve' was not given within 24 h"
