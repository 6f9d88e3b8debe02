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
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowHistory,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from activities.admission import AdmissionActivities, Waker
from activities.control import ControlActivities
from activities.demo import DemoActivities
from activities.opening import OpeningActivities
from activities.recorder import EventRecorder
from activities.recording import RecordingActivities
from schemas.opening import OPEN_TASK, TaskOpened, TaskOpening
from schemas.workflow import RECORD_EVENT, RecordEventInput, RecordEventResult, TaskWorkflowInput
from store import EventStore
from store.admission import AdmissionStore
from tests.unit.test_replay import replayer
from worker.temporal_worker import workflow_runner
from workflows.policies import PATCH_CANCEL_DURING_RECORD
from workflows.task_workflow import TaskWorkflow


class Hold:
    """Holds the first attempt it is asked to hold until the cancel interrupts it."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.interrupted = asyncio.Event()

    async def first_attempt(self) -> None:
        if self.reached.is_set():
            return
        self.reached.set()
        try:
            await asyncio.Event().wait()  # only the cancel ends this attempt
        except asyncio.CancelledError:
            self.interrupted.set()
            raise

    async def cancel_reached(self, handle: WorkflowHandle[Any, Any]) -> WorkflowHistory:
        """Cancel the run natively once the hold is reached; its history once it closed
        Canceled with the held attempt interrupted."""
        await self.reached.wait()
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        assert self.interrupted.is_set()
        assert (await handle.describe()).status is WorkflowExecutionStatus.CANCELED
        return await handle.fetch_history()


class HeldCreation(Hold):
    """`record_event` that holds the first recording of `task.created.v1` until cancelled."""

    def __init__(self, recorder: EventRecorder) -> None:
        super().__init__()
        self._inner = RecordingActivities(recorder)

    @activity.defn(name=RECORD_EVENT)
    async def record_event(self, request: RecordEventInput) -> RecordEventResult:
        if request.event_type == "task.created.v1":
            await self.first_attempt()
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
        history = await held.cancel_reached(handle)

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


class HeldOpening(Hold):
    """`open_task` whose first attempt holds (after recording nothing) until cancelled."""

    def __init__(self, inner: OpeningActivities) -> None:
        super().__init__()
        self._inner = inner

    @activity.defn(name=OPEN_TASK)
    async def open_task(self, request: TaskOpening) -> TaskOpened:
        await self.first_attempt()
        return await self._inner.open_task(request)


async def test_a_native_cancel_during_a_limited_tasks_opening_gives_its_slot_back(
    client: Client, recorder: EventRecorder, pool: AsyncConnectionPool
) -> None:
    """A task with a limit opens (`task.created.v1` and its claim) in one local activity,
    `open_task`: interrupted by a native cancel, it opens anyway, then ends cancelled
    and gives back the slot it claimed (through `close_task`)."""
    store = AdmissionStore(pool, {})
    opening = OpeningActivities(recorder, AdmissionActivities(store, Waker(client, store)))
    held = HeldOpening(opening)
    task_id = str(uuid.uuid4())
    key = f"held-{uuid.uuid4().hex[:8]}"
    queue = f"cancel-opening-{uuid.uuid4().hex[:8]}"
    worker = Worker(
        client,
        task_queue=queue,
        workflows=[TaskWorkflow],
        activities=[
            held.open_task,
            opening.close_task,
            RecordingActivities(recorder).record_event,
            DemoActivities(recorder).run_step,
            ControlActivities(client).request_cancellation,
        ],
        workflow_runner=workflow_runner(),
    )
    async with worker:
        request = TaskWorkflowInput(
            task_id=task_id,
            task_type="demo.pipeline",
            input={"steps": 2, "step_seconds": 30},
            owner="acme",
            concurrency_key=key,
            concurrency_limit=1,
        )
        handle = await client.start_workflow(
            "TaskWorkflow", request, id=f"task-{task_id}", task_queue=queue
        )
        history = await held.cancel_reached(handle)

    events = [
        orjson.loads(e.envelope_json)["type"]
        for e in await EventStore(pool).history(task_id, limit=100)
    ]
    assert events == ["task.created.v1", "task.cancelled.v1"]
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM admission_tickets WHERE concurrency_key = %s", (key,)
        )
        assert await cursor.fetchone() == (0,)
    assert (await replayer().replay_workflow(history)).replay_failure is None
