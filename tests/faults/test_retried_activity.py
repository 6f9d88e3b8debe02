"""An activity retried after it recorded its event → the event exists, and is seen, once.

The `record_event` activity is replaced (registered under the same name) by one that
runs the real recording and then fails its first attempt, as if the worker had lost
the activity's completion after the commit. Temporal retries it with the same input,
so the same event id: the store keeps one event, the retry reports a duplicate and
publishes nothing, and every observer sees each event once.
"""

from __future__ import annotations

from collections import Counter

from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from activities.demo import DemoActivities
from activities.recorder import EventRecorder
from activities.recording import RecordingActivities
from schemas import TERMINAL_EVENT_TYPES
from schemas.workflow import RECORD_EVENT, RecordEventInput, RecordEventResult
from tests.faults.harness import (
    BrokerStreamView,
    collector,
    create_task,
    fault_settings,
    watch,
    worker_and_api,
)
from tests.invariants import wait_until_delivered
from worker.temporal_worker import workflow_runner
from workflows.task_workflow import TaskWorkflow


class FailsAfterCommit:
    """`record_event` whose first attempt commits (and publishes), then fails."""

    def __init__(self, recorder: EventRecorder) -> None:
        self._real = RecordingActivities(recorder)
        self.attempts: Counter[str] = Counter()
        self.duplicates: Counter[str] = Counter()

    @activity.defn(name=RECORD_EVENT)
    async def record_event(self, request: RecordEventInput) -> RecordEventResult:
        result = await self._real.record_event(request)
        self.attempts[request.event_id] += 1
        self.duplicates[request.event_id] += result.duplicate
        if activity.info().attempt == 1:
            raise RuntimeError("fault injection: failed after the event was committed")
        return result


async def test_a_retried_recording_is_one_event(
    truth: AsyncConnectionPool, fault_db: str, redis_url: str, temporal_address: str
) -> None:
    settings = fault_settings(
        database_url=fault_db, redis_url=redis_url, temporal_address=temporal_address
    )
    group = f"faults-retry-{settings.task_queue}"
    standins: list[FailsAfterCommit] = []

    def make_worker(client: Client, recorder: EventRecorder, task_queue: str) -> Worker:
        standins.append(FailsAfterCommit(recorder))
        return Worker(
            client,
            task_queue=task_queue,
            workflows=[TaskWorkflow],
            activities=[standins[0].record_event, DemoActivities(recorder).run_step],
            workflow_runner=workflow_runner(),
        )

    stream = BrokerStreamView(redis_url)
    try:
        async with worker_and_api(settings, stream, group=group, make_worker=make_worker) as (
            _,
            http,
        ):
            task_ids = [await create_task(http, {"steps": 1, "step_seconds": 0.1})]
            watchers = watch(http, task_ids[0])
            collect = collector(truth, task_ids, watchers, group, stream)
            history, _ = await wait_until_delivered(collect, tasks=task_ids, within=30)
            for watcher in watchers:
                await watcher.stop()
    finally:
        await stream.close()

    (standin,) = standins
    task_level = [e for e in history if not e.type.startswith("task.step.")]
    assert {e.type for e in task_level} == {"task.created.v1", "task.completed.v1"}
    assert any(e.type in TERMINAL_EVENT_TYPES for e in task_level)
    for event in task_level:
        # Recorded twice, stored once: the retry found it and reported a duplicate.
        assert standin.attempts[event.event_id] == 2, event
        assert standin.duplicates[event.event_id] == 1, event
    # The broker carried each of them once: a duplicate recording publishes nothing.
    on_broker = Counter(e.event_id for e in await _broker_events(redis_url, task_ids))
    assert all(on_broker[e.event_id] == 1 for e in task_level), on_broker


async def _broker_events(redis_url: str, task_ids: list[str]) -> list:  # type: ignore[type-arg]
    view = BrokerStreamView(redis_url)
    try:
        return await view.events(task_ids)
    finally:
        await view.close()
