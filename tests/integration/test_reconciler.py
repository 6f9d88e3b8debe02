"""The reconciler on real servers: endings recorded once, after an outage too, and tasks
whose workflow task keeps failing flagged."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from activities.recorder import EventRecorder
from schemas.workflow import TaskWorkflowInput, workflow_id_for
from store import TaskReader
from tests.invariants import find_violations, load_history
from tests.polling import until
from tests.wedged_plugin import PLUGIN as WEDGED
from worker.reconciler import Reconciler
from worker.temporal_worker import build_worker


@pytest.fixture
async def client(temporal_address: str) -> Client:
    return await Client.connect(temporal_address, data_converter=pydantic_data_converter)


@pytest.fixture
async def worker(client: Client, recorder: EventRecorder) -> AsyncIterator[Worker]:
    queue = f"reconcile-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, recorder, task_queue=queue, plugins=[WEDGED]) as running:
        yield running


def _reconciler(client: Client, pool: AsyncConnectionPool, recorder: EventRecorder) -> Reconciler:
    # No look-back limit worth the name, every open task stale at once, a sweep every round.
    return Reconciler(client, pool, recorder, lookback=3600, sweep_every=0, stale_after=0)


async def _start(
    client: Client, worker: Worker, task_type: str, task_input: dict[str, object]
) -> str:
    task_id = str(uuid.uuid4())
    await client.start_workflow(
        "TaskWorkflow",
        TaskWorkflowInput(task_id=task_id, task_type=task_type, input=task_input),
        id=workflow_id_for(task_id),
        task_queue=worker.task_queue,
    )
    return task_id


async def _until_recorded(pool: AsyncConnectionPool, task_id: str, event_type: str) -> None:
    async def recorded() -> bool:
        return event_type in {e.type for e in await load_history(pool, [task_id])}

    await until(recorded, within=30, what=f"{event_type} of {task_id}")


async def test_a_run_terminated_while_no_reconciler_ran_is_healed_once(
    client: Client, worker: Worker, recorder: EventRecorder, pool: AsyncConnectionPool
) -> None:
    task_id = await _start(client, worker, "demo.pipeline", {"steps": 3, "step_seconds": 5})
    await _until_recorded(pool, task_id, "task.step.started.v1")
    handle = client.get_workflow_handle(workflow_id_for(task_id))
    await handle.terminate(reason="operator during an outage")
    # Visibility is eventually consistent: reconcile until it shows the closed run.
    reconcilers = [_reconciler(client, pool, recorder) for _ in range(2)]

    async def reconciled() -> bool:
        await asyncio.gather(*(r.round() for r in reconcilers))  # two at once: one records
        record = await TaskReader(pool).get(task_id)
        return record is not None and record.status == "terminated"

    await until(reconciled, within=30, what="the terminated run to be reconciled")
    for reconciler in reconcilers:
        await reconciler.round()
    history = await load_history(pool, [task_id])
    assert [e.type for e in history].count("task.terminated.v1") == 1
    assert history[-1].type == "task.terminated.v1"
    assert find_violations(history, []) == []
    # Recorded by one of them, once (other tests' runs may be reconciled meanwhile).
    assert [t for r in reconcilers for t in r.stats.recent].count(task_id) == 1
    record = await TaskReader(pool).get(task_id)
    assert record is not None
    assert record.error == "operator during an outage"


async def test_a_task_whose_workflow_task_keeps_failing_is_flagged(
    client: Client, worker: Worker, recorder: EventRecorder, pool: AsyncConnectionPool
) -> None:
    task_id = await _start(client, worker, "test.wedged", {})
    await _until_recorded(pool, task_id, "task.created.v1")
    handle = client.get_workflow_handle(workflow_id_for(task_id))

    async def failed_twice() -> bool:
        return (await handle.describe()).raw_description.pending_workflow_task.attempt >= 2

    await until(failed_twice, within=30, what="the workflow task to fail twice")
    reconciler = _reconciler(client, pool, recorder)
    await reconciler.round()
    record = await TaskReader(pool).get(task_id)
    assert record is not None
    assert record.workflow_task_failing_since is not None
    assert record.status == "running"  # nothing is made up: the run is still open
    assert reconciler.stats.workflow_tasks_failing == 1
    await reconciler.round()
    assert reconciler.stats.workflow_tasks_failing == 1  # flagged once
    # An operator ends it: the reconciler records that, and the flag goes with the event.
    await handle.terminate(reason="bad deploy")

    async def closed() -> bool:
        return (await handle.describe()).status is not WorkflowExecutionStatus.RUNNING

    await until(closed, within=30, what="the run to close")

    async def reconciled() -> bool:
        await reconciler.round()
        found = await TaskReader(pool).get(task_id)
        return found is not None and found.status == "terminated"

    await until(reconciled, within=30, what="the terminated run to be reconciled")
    record = await TaskReader(pool).get(task_id)
    assert record is not None
    assert record.workflow_task_failing_since is None
