"""A Temporal-native cancel that reaches an event's recording still ends cancelled.

The workflow records its events through a local activity; a native cancel that
arrives while one runs cancels it, and before `cancel-during-record` that ended
the run with no terminal event (during `task.created.v1`) or as a failed task
(during `task.paused.v1`). Here the recording of `task.created.v1` is held until
the cancel has reached it, on the real dev server, Postgres and Redis.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from activities.control import ControlActivities
from activities.demo import DemoActivities
from activities.recorder import EventRecorder
from activities.recording import RecordingActivities
from schemas.workflow import RECORD_EVENT, RecordEventInput, RecordEventResult, TaskWorkflowInput
from store import EventStore
from tests.unit.test_replay import replayer
from worker.temporal_worker import workflow_runner
from workflows.policies import PATCH_CANCEL_DURING_RECORD
from workflows.task_workflow import TaskWorkflow


class HeldCreation:
    """`record_event` that holds the first recording of `task.created.v1` until cancelled."""

    def __init__(self, recorder: EventRecorder) -> None:
        self._inner = RecordingActivities(recorder)
        self.reached = asyncio.Event()
        self.interrupted = asyncio.Event()

    @activity.defn(name=RECORD_EVENT)
    async def record_event(self, request: RecordEventInput) -> RecordEventResult:
        if request.event_type == "task.created.v1" and not self.reached.is_set():
            self.reached.set()
            try:
                await asyncio.Event().wait()  # only the cancel ends this attempt
            except asyncio.CancelledError:
                self.interrupted.set()
                raise
        return await self._inner.record_event(request)


@pytest.fixture(scope="module")
async def client(temporal_address: str) -> Client:
    return await Client.connect(temporal_address, data_converter=pydantic_data_converter)


async def test_a_native_cancel_during_the_first_recording_ends_cancelled(
    client: Client, recorder: EventRecorder, pool: AsyncConnectionPool
) -> None:
    held = HeldCreation(recorder)
    task_id = str(uuid.uuid4())
    queue = f"cancel-record-{uuid.uuid4().hex[:8]}"
    worker = Worker(
        client,
        task_queue=queue,
        workflows=[TaskWorkflow],
        activities=[
            held.record_event,
            DemoActivities(recorder).run_step,
            ControlActivities(client).request_cancellation,
        ],
        workflow_runner=workflow_runner(),
    )
    async with worker:
        handle = await client.start_workflow(
            "TaskWorkflow",
            TaskWorkflowInput(
                task_id=task_id, task_type="demo.pipeline", input={"steps": 2, "step_seconds": 30}
            ),
            id=f"task-{task_id}",
            task_queue=queue,
        )
        await held.reached.wait()
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        assert held.interrupted.is_set()
        assert (await handle.describe()).status is WorkflowExecutionStatus.CANCELED
        history = await handle.fetch_history()

    markers = [
        e.marker_recorded_event_attributes.SerializeToString()
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
        and e.marker_recorded_event_attributes.marker_name == "core_patch"
    ]
    assert any(PATCH_CANCEL_DURING_RECORD.encode() in data for data in markers), markers
    events: list[dict[str, Any]] = [
        orjson.loads(e.envelope_json) for e in await EventStore(pool).history(task_id, limit=100)
    ]
    assert [e["type"] for e in events] == ["task.created.v1", "task.cancelled.v1"]
    assert [e["sequence"] for e in events] == [1, 2]
    assert events[-1]["data"]["reason"]
    # The run replays with today's code (a copy is kept as v5_cancelled_during_record).
    assert (await replayer().replay_workflow(history)).replay_failure is None
