"""Record workflow histories for the replay tests (a maintenance script, not a test).

Run it against real servers when a workflow change needs `workflow.patched`,
BEFORE changing the workflow, so the histories are those of the version running
in production:

    .venv/bin/taskplane services --migrate &      # or any TASKPLANE_* servers
    set -a; . .taskplane/services.env; set +a
    .venv/bin/python -m tests.replay.record_histories v1

With `--incompatible` it also (re)records `incompatible.json`, from a
deliberately different workflow registered under the same name, which replay
must reject; keep the existing one otherwise. `--only=NAME` records one scenario.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError

from activities.admission import AdmissionActivities, Waker
from activities.recorder import EventRecorder
from api.admission import park_if_full
from api.creation_turns import CreationTurns
from broker.redis import RedisBroker
from schemas.debounce import (
    DebounceCreation,
    DebouncedCreation,
    DebounceStart,
    DebounceSummary,
    debounce_workflow_id,
)
from schemas.deferral import DEFERRAL_NOTICE_WORKFLOW, DeferralNotice, deferral_workflow_id
from schemas.schedules import SCHEDULED_TASK_WORKFLOW, ScheduledTaskInput
from schemas.tasks import DemoStepInput, DemoStepResult, TaskStatus
from schemas.workflow import (
    DEMO_STEP,
    UPDATE_INPUT,
    DeliverInputRequest,
    TaskWorkflowInput,
    TaskWorkflowResult,
    start_search_attributes,
    workflow_id_for,
)
from settings import Settings
from store import EventStore, Outbox, open_pool
from store.admission import AdmissionStore
from temporal.client import connect_client
from temporal.debounce import DebounceClient
from temporal.tasks import TaskClient
from worker.temporal_worker import build_worker, workflow_runner

HISTORIES = Path(__file__).parent / "histories"


@workflow.defn(name="TaskWorkflow")
class IncompatibleTaskWorkflow:
    """Skips `task.created` and runs a step first: not what TaskWorkflow does."""

    @workflow.run
    async def run(self, request: TaskWorkflowInput) -> TaskWorkflowResult:
        await workflow.execute_activity(
            DEMO_STEP,
            DemoStepInput(
                task_id=request.task_id,
                index=1,
                total_steps=1,
                name="x",
                step_seconds=0,
                progress_ticks=0,
            ),
            result_type=DemoStepResult,
            start_to_close_timeout=timedelta(seconds=30),
        )
        return TaskWorkflowResult(status=TaskStatus.COMPLETED)


async def _start(
    client: Client,
    queue: str,
    task_input: dict[str, Any],
    task_type: str = "demo.pipeline",
    **concurrency: Any,
) -> WorkflowHandle[Any, Any]:
    task_id = str(uuid.uuid4())
    return await client.start_workflow(
        "TaskWorkflow",
        TaskWorkflowInput(task_id=task_id, task_type=task_type, input=task_input, **concurrency),
        id=f"task-{task_id}",
        task_queue=queue,
        search_attributes=start_search_attributes("demo.pipeline"),  # as TaskClient starts it
    )


async def _status(handle: WorkflowHandle[Any, Any], wanted: str) -> None:
    for _ in range(200):
        state = await handle.query("status")
        if state["status"] == wanted:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"never reached {wanted}")


async def _in_step(handle: WorkflowHandle[Any, Any]) -> None:
    """Past admission: its first step runs (it holds its key's slot)."""
    for _ in range(400):
        state = await handle.query("status")
        if state["current_step"] == 1:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("never reached its first step")


async def _finish(handle: WorkflowHandle[Any, Any]) -> None:
    with contextlib.suppress(Exception):  # failed and cancelled runs are scenarios too
        await handle.result()


async def completed(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    handle = await _start(client, queue, {"steps": 2, "step_seconds": 0.1, "progress_ticks": 2})
    await _finish(handle)
    return handle


async def failed(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    handle = await _start(client, queue, {"steps": 3, "step_seconds": 0, "fail_at_step": 2})
    await _finish(handle)
    return handle


async def paused_resumed(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    handle = await _start(client, queue, {"steps": 3, "step_seconds": 0.3})
    await asyncio.sleep(0.1)
    await handle.signal("pause")
    await _status(handle, "paused")
    await handle.signal("resume")
    await _finish(handle)
    return handle


async def cancelled_while_paused(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    handle = await _start(client, queue, {"steps": 3, "step_seconds": 0.3})
    await asyncio.sleep(0.1)
    await handle.signal("pause")
    await _status(handle, "paused")
    await handle.signal("cancel", "recorded scenario")
    await _finish(handle)
    return handle


async def cancelled_natively(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    handle = await _start(client, queue, {"steps": 2, "step_seconds": 5})
    await asyncio.sleep(0.5)
    await handle.cancel()
    await _finish(handle)
    return handle


async def cancelled_by_signal(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    handle = await _start(client, queue, {"steps": 2, "step_seconds": 5})
    await asyncio.sleep(0.5)
    await handle.signal("cancel", "recorded scenario")
    await _finish(handle)
    return handle


async def terminated(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    handle = await _start(client, queue, {"steps": 2, "step_seconds": 5})
    await asyncio.sleep(0.5)
    await handle.terminate(reason="recorded scenario")
    await _finish(handle)
    return handle


async def reset(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    """A finished task reset to its first workflow task, as `temporal workflow reset` does:
    the history kept is the new run's."""
    handle = await _start(client, queue, {"steps": 2, "step_seconds": 0})
    await _finish(handle)
    cli = Path(sys.executable).parent / "temporal"
    process = await asyncio.create_subprocess_exec(
        str(cli),
        "workflow",
        "reset",
        "--workflow-id",
        handle.id,
        "--type",
        "FirstWorkflowTask",
        "--reason",
        "recorded scenario",
        "--address",
        Settings().require_temporal_address(),
    )
    if await process.wait() != 0:
        raise RuntimeError("temporal workflow reset failed")
    new_run = client.get_workflow_handle(handle.id)
    await _finish(new_run)
    return new_run


async def approval_approved(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    """`demo.approval`: waits for `approve`, which an update delivers (issue 18)."""
    handle = await _start(client, queue, {"step_seconds": 0}, "demo.approval")
    await _status(handle, "waiting")
    update = DeliverInputRequest(name="approve", value={"approved": True}, via="api")
    await handle.execute_update(UPDATE_INPUT, update, id="recorded-delivery")
    await _finish(handle)
    return handle


async def approval_timed_out(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    handle = await _start(
        client, queue, {"step_seconds": 0, "timeout_seconds": 0.5}, "demo.approval"
    )
    await _finish(handle)
    return handle


async def approval_cancelled_while_waiting(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    handle = await _start(client, queue, {"step_seconds": 0}, "demo.approval")
    await _status(handle, "waiting")
    await handle.signal("cancel", "recorded scenario")
    await _finish(handle)
    return handle


async def controlled(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    """The API's way: the `control` update (v6), a refused one among them."""
    handle = await _start(client, queue, {"steps": 3, "step_seconds": 0.3})
    await _status(handle, "running")
    await handle.execute_update("control", {"action": "pause"})
    with contextlib.suppress(WorkflowUpdateFailedError):  # refused: not in the history
        await handle.execute_update("control", {"action": "pause"})
    await _status(handle, "paused")
    await handle.execute_update("control", {"action": "resume"})
    await _finish(handle)
    return handle


async def chat(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    """`demo.chat` (v7): one step that streams its answer; its first attempt fails."""
    task_input = {"tokens": 12, "token_seconds": 0, "fail_after_tokens": 5}
    handle = await _start(client, queue, task_input, task_type="demo.chat")
    await _finish(handle)
    return handle


async def debounced(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    """A task started by a debounce window (v11): its created event lists the creations."""
    task_id = str(uuid.uuid4())
    summary = DebounceSummary(
        key="k",
        period_seconds=1,
        collapsed=2,
        creations=[DebouncedCreation(at=datetime.now(UTC), request_nonce=str(n)) for n in (1, 2)],
    )
    handle = await client.start_workflow(
        "TaskWorkflow",
        TaskWorkflowInput(
            task_id=task_id,
            task_type="demo.pipeline",
            input={"steps": 1, "step_seconds": 0},
            owner="default",
            debounced=summary,
        ),
        id=f"task-{task_id}",
        task_queue=queue,
        search_attributes=start_search_attributes("demo.pipeline"),
    )
    await _finish(handle)
    return handle


def _limited(key: str, strategy: str = "queue") -> dict[str, Any]:
    """A limit of 1 on `key` (v9, issue 24: admission before the first step)."""
    return {
        "owner": "acme",
        "concurrency_key": key,
        "concurrency_limit": 1,
        "concurrency_strategy": strategy,
    }


async def queued_admitted(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    """Queued behind a running task of its key, admitted when it ends, then completed."""
    key = f"replay-{uuid.uuid4().hex[:8]}"
    holder = await _start(client, queue, {"steps": 1, "step_seconds": 1}, **_limited(key))
    await _in_step(holder)
    handle = await _start(client, queue, {"steps": 1, "step_seconds": 0}, **_limited(key))
    await _status(handle, "queued")
    await _finish(holder)
    await _finish(handle)
    return handle


async def parked_admitted(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    """Parked by the API behind a running task of its key (v15: its workflow started with a
    long delay), woken with Signal-With-Start when the holder ends, then completed."""
    key = f"replay-{uuid.uuid4().hex[:8]}"
    holder = await _start(client, queue, {"steps": 1, "step_seconds": 1}, **_limited(key))
    await _in_step(holder)
    task_id = str(uuid.uuid4())
    request = TaskWorkflowInput(
        task_id=task_id,
        task_type="demo.pipeline",
        input={"steps": 1, "step_seconds": 0},
        **_limited(key),
    )
    settings = Settings()
    pool = await open_pool(settings.require_database_url())
    try:
        delay = await park_if_full(
            pool,
            request,
            settings,
            CreationTurns(0),
            request_hash="replay",
            request_nonce="replay",
        )
    finally:
        await pool.close()
    if delay is None:
        raise RuntimeError("the key was not full: nothing parked")
    starter = TaskClient(client, task_queue=queue, rpc_timeout=timedelta(seconds=10))
    await starter.start(
        request, request_hash="replay", request_nonce="replay", start_delay=delay, parked=True
    )
    await _finish(holder)
    handle = client.get_workflow_handle(workflow_id_for(task_id))
    await _finish(handle)
    return handle


async def debounce_window(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    """`DebounceWorkflow` (v11): two creations, then the window starts its task."""
    start = DebounceStart(
        tenant="default", task_type="demo.pipeline", key=uuid.uuid4().hex, period_seconds=0.5
    )
    debouncer = DebounceClient(client, task_queue=queue, rpc_timeout=timedelta(seconds=10))
    for steps in (1, 2):
        answer = await debouncer.add(
            start,
            DebounceCreation(
                task_id=str(uuid.uuid4()),
                input={"steps": steps, "step_seconds": 0},
                request_hash=f"hash-{steps}",
                request_nonce=f"nonce-{steps}",
            ),
        )
    handle = client.get_workflow_handle(debounce_workflow_id("default", "demo.pipeline", start.key))
    await handle.result()
    await _finish(client.get_workflow_handle(workflow_id_for(answer.task_id)))
    return handle


async def scheduled(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    """A schedule's run (workflows/scheduled.py), started as its Temporal Schedule would:
    it claims its task and runs it as a child to the end."""
    handle = await client.start_workflow(
        SCHEDULED_TASK_WORKFLOW,
        ScheduledTaskInput(
            tenant="default", schedule_id="replay", task_type="demo.pipeline", input={"steps": 1}
        ),
        id=f"scheduled-{uuid.uuid4()}-2026-12-04T10:00:00Z",
        task_queue=queue,
    )
    await _finish(handle)
    return handle


async def scheduled_flow(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    """A schedule's run with flow control (v14): its task takes a slot of the schedule's
    concurrency key, with its priority, under Temporal Priority."""
    handle = await client.start_workflow(
        SCHEDULED_TASK_WORKFLOW,
        ScheduledTaskInput(
            tenant="default",
            schedule_id="replay",
            task_type="demo.pipeline",
            input={"steps": 1},
            concurrency_key=f"replay-{uuid.uuid4().hex[:8]}",
            concurrency_limit=1,
            priority=2,
        ),
        id=f"scheduled-{uuid.uuid4()}-2026-12-04T10:00:00Z",
        task_queue=queue,
    )
    await _finish(handle)
    return handle


async def deferral_notice(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    """A start the rate limit deferred (v14): `task.deferred.v1` recorded beside it."""
    task_id = str(uuid.uuid4())
    handle = await client.start_workflow(
        DEFERRAL_NOTICE_WORKFLOW,
        DeferralNotice(
            task_id=task_id,
            task_type="demo.pipeline",
            until=datetime.now(UTC) + timedelta(seconds=30),
            rule="type-m",
        ),
        id=deferral_workflow_id(task_id),
        task_queue=queue,
    )
    await _finish(handle)
    return handle


async def cancelled_while_queued(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    key = f"replay-{uuid.uuid4().hex[:8]}"
    holder = await _start(client, queue, {"steps": 1, "step_seconds": 1}, **_limited(key))
    await _in_step(holder)
    handle = await _start(client, queue, {"steps": 1, "step_seconds": 0}, **_limited(key))
    await _status(handle, "queued")
    await handle.signal("cancel", "not now")
    await _finish(handle)
    await _finish(holder)
    return handle


async def refused(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    """`cancel_newest`: the key is full, the newcomer is cancelled."""
    key = f"replay-{uuid.uuid4().hex[:8]}"
    strategy = _limited(key, "cancel_newest")
    holder = await _start(client, queue, {"steps": 1, "step_seconds": 1}, **strategy)
    await _in_step(holder)
    handle = await _start(client, queue, {"steps": 1, "step_seconds": 0}, **strategy)
    await _finish(handle)
    await _finish(holder)
    return handle


SCENARIOS: dict[str, Callable[[Client, str], Awaitable[WorkflowHandle[Any, Any]]]] = {
    "completed": completed,
    "failed": failed,
    "paused_resumed": paused_resumed,
    "cancelled_while_paused": cancelled_while_paused,
    "cancelled_natively": cancelled_natively,
    "cancelled_by_signal": cancelled_by_signal,
    "terminated": terminated,
    "reset": reset,
    "approval_approved": approval_approved,
    "approval_timed_out": approval_timed_out,
    "approval_cancelled_while_waiting": approval_cancelled_while_waiting,
    "controlled": controlled,
    "chat": chat,
    "scheduled": scheduled,
    "scheduled_flow": scheduled_flow,
    "deferral_notice": deferral_notice,
    "debounced": debounced,
    "debounce_window": debounce_window,
    "queued_admitted": queued_admitted,
    "parked_admitted": parked_admitted,
    "cancelled_while_queued": cancelled_while_queued,
    "refused": refused,
}


async def record(version: str) -> None:
    settings = Settings()
    pool = await open_pool(settings.require_database_url())
    broker = RedisBroker(settings.require_redis_url())
    await broker.connect()
    client = await connect_client(settings)
    recorder = EventRecorder(EventStore(pool), Outbox(pool), broker)
    queue = f"record-{uuid.uuid4().hex[:8]}"
    HISTORIES.mkdir(exist_ok=True)
    try:
        admission = AdmissionStore(pool, {})
        starter = TaskClient(client, task_queue=queue, rpc_timeout=timedelta(seconds=10))
        activities = AdmissionActivities(admission, Waker(client, admission, starter))
        async with build_worker(
            client, recorder, task_queue=queue, admission=activities, pool=pool
        ):
            only = [arg.removeprefix("--only=") for arg in sys.argv if arg.startswith("--only=")]
            for name, scenario in SCENARIOS.items():
                if only and name not in only:
                    continue
                handle = await scenario(client, queue)
                history = await handle.fetch_history()
                (HISTORIES / f"{version}_{name}.json").write_text(history.to_json())
        if "--incompatible" not in sys.argv:
            return
        odd_queue = f"{queue}-incompatible"
        from temporalio.worker import Worker

        from activities.demo import DemoActivities

        async with Worker(
            client,
            task_queue=odd_queue,
            workflows=[IncompatibleTaskWorkflow],
            activities=[DemoActivities(recorder).run_step],
            workflow_runner=workflow_runner(),
        ):
            handle = await _start(client, odd_queue, {"steps": 1})
            await _finish(handle)
            (HISTORIES / "incompatible.json").write_text((await handle.fetch_history()).to_json())
    finally:
        await broker.close()
        await pool.close()


if __name__ == "__main__":
    versions = [arg for arg in sys.argv[1:] if not arg.startswith("--")]
    asyncio.run(record(versions[0] if versions else "v1"))
