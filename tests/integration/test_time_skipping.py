"""Timers and retry back-off on Temporal's time-skipping test server.

The server skips virtual time while the test waits on a result and nothing is
running, so an hour's start delay or seconds of retry back-off cost no wall
time. (It does not skip while an activity is outstanding, so step timeouts are
tested on the dev server: tests/integration/test_step_failures.py.) Events
still go through the real recorder into the real Postgres.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import orjson
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.recorder import EventRecorder
from schemas.workflow import TaskWorkflowInput, TaskWorkflowResult
from store import EventStore
from worker.temporal_worker import build_worker


async def run_task(
    env: WorkflowEnvironment, recorder: EventRecorder, task_input: dict[str, Any]
) -> tuple[str, WorkflowHandle[Any, TaskWorkflowResult], TaskWorkflowResult]:
    task_id = str(uuid.uuid4())
    queue = f"ts-{uuid.uuid4().hex[:8]}"
    async with build_worker(env.client, recorder, task_queue=queue):
        handle = await env.client.start_workflow(
            "TaskWorkflow",
            TaskWorkflowInput(task_id=task_id, task_type="demo.pipeline", input=task_input),
            id=f"task-{task_id}",
            task_queue=queue,
            result_type=TaskWorkflowResult,
        )
        return task_id, handle, await handle.result()


async def events_of(store: EventStore, task_id: str) -> list[dict[str, Any]]:
    return [orjson.loads(e.envelope_json) for e in await store.history(task_id, limit=1000)]


async def test_an_hour_long_start_delay_is_skipped(
    time_skipping: WorkflowEnvironment, recorder: EventRecorder, pool: Any
) -> None:
    virtual_start = await time_skipping.get_current_time()
    began = time.monotonic()
    task_id, _, result = await run_task(
        time_skipping, recorder, {"steps": 1, "step_seconds": 0, "start_delay_seconds": 3600}
    )
    assert result.status == "completed"
    assert time.monotonic() - began < 30
    assert await time_skipping.get_current_time() - virtual_start >= timedelta(hours=1)
    types = [e["type"] for e in await events_of(EventStore(pool), task_id)]
    assert types[0] == "task.created.v1"
    assert types[-1] == "task.completed.v1"


async def test_retry_back_off_between_failed_attempts(
    time_skipping: WorkflowEnvironment, recorder: EventRecorder, pool: Any
) -> None:
    task_id, handle, result = await run_task(
        time_skipping,
        recorder,
        {"steps": 1, "step_seconds": 0, "flaky_at_step": 1, "flaky_attempts": 2},
    )
    assert result.status == "completed"
    events = await events_of(EventStore(pool), task_id)
    failures = [e["data"] for e in events if e["type"] == "task.step.failed.v1"]
    assert [(f["attempt"], f["will_retry"]) for f in failures] == [(1, True), (2, True)]
    starts = [e["data"]["attempt"] for e in events if e["type"] == "task.step.started.v1"]
    assert starts == [1, 2, 3]
    # The server's own (virtual) clock shows the policy's back-off: 1 s, then 2 s.
    history = await handle.fetch_history()
    began = history.events[0].event_time.ToDatetime()
    step_done = next(
        e.event_time.ToDatetime()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    )
    assert step_done - began >= timedelta(seconds=3)
