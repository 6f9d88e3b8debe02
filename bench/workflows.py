"""The bench's own workflows: the baseline and the variants Taskplane was weighed against.

Deterministic, and small on purpose: the Temporal sandbox re-imports this
module for every workflow run, so it imports only temporalio and (passed
through) pydantic models. Activities are referred to by name.

- `BenchBare`: the bare-Temporal baseline, `demo.pipeline`'s shape (one
  activity per step, same timeouts and retry policy) with steps that record
  nothing and a workflow that records nothing.
- `BenchEmitEveryEvent`: every event (task-level and step-level) recorded by
  the workflow itself, through the production `record_event` activity, run as
  a local activity or as a regular activity per event; the steps record nothing.
- `BenchStreamedPipeline`: the same pipeline carrying its events on
  `temporalio.contrib.workflow_streams` instead of Postgres + Redis: the
  workflow hosts the stream, the step activity publishes to it.
- `BenchStreamedChat`: `demo.chat`'s output (the same tokens, the same schedule) on a
  Workflow Stream: one activity publishes every token to the workflow's stream.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.contrib.workflow_streams import WorkflowStream

with workflow.unsafe.imports_passed_through():
    from bench.models import BenchChatInput, BenchPipelineInput, BenchPipelineResult
    from schemas.tasks import DemoStepInput, DemoStepResult
    from schemas.workflow import (
        RECORD_EVENT,
        TASK_STATUS,
        TASK_STEP,
        RecordEventInput,
        RecordEventResult,
    )
    from workflows.policies import (
        PATCH_LEAN_SEARCH_ATTRIBUTES,
        RECORD_RETRY,
        STEP_HEARTBEAT_TIMEOUT,
        STEP_RETRY,
    )

NOOP_STEP = "bench_noop_step"
STREAMED_STEP = "bench_streamed_step"
STREAM_TOPIC = "events"
STREAMED_CHAT_STEP = "bench_streamed_chat_step"
ANSWER_TOPIC = "answer"


def _step_input(request: BenchPipelineInput, index: int) -> DemoStepInput:
    return DemoStepInput(
        task_id=request.task_id,
        index=index,
        total_steps=request.steps,
        name=f"step-{index}",
        step_seconds=request.step_seconds,
        progress_ticks=request.progress_ticks,
    )


async def _run_step(activity_name: str, step: DemoStepInput) -> DemoStepResult:
    """One step with the production step's options (timeouts, heartbeat, retry)."""
    result: DemoStepResult = await workflow.execute_activity(
        activity_name,
        step,
        result_type=DemoStepResult,
        start_to_close_timeout=timedelta(seconds=step.step_seconds * 2 + 30),
        heartbeat_timeout=STEP_HEARTBEAT_TIMEOUT,
        retry_policy=STEP_RETRY,
    )
    return result


async def _record(request: BenchPipelineInput, event_type: str, data: dict[str, Any]) -> None:
    """One event through `record_event`, as a local or a regular activity."""
    record = RecordEventInput(
        event_id=str(workflow.uuid4()), task_id=request.task_id, event_type=event_type, data=data
    )
    if request.via == "local_activity":
        await workflow.execute_local_activity(
            RECORD_EVENT,
            record,
            result_type=RecordEventResult,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RECORD_RETRY,
        )
    else:
        await workflow.execute_activity(
            RECORD_EVENT,
            record,
            result_type=RecordEventResult,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RECORD_RETRY,
        )


@workflow.defn(name="BenchBare")
class BareWorkflow:
    @workflow.run
    async def run(self, request: BenchPipelineInput) -> BenchPipelineResult:
        task_input = {"steps": request.steps, "step_seconds": 0, "progress_ticks": 0}
        if request.task_events:
            await _record(
                request, "task.created.v1", {"task_type": "demo.pipeline", "input": task_input}
            )
        per_step = request.upserts == "per_step"
        if request.upserts == "lean":
            workflow.patched(PATCH_LEAN_SEARCH_ATTRIBUTES)  # upserts TemporalChangeVersion
        if per_step:
            workflow.upsert_search_attributes([TASK_STATUS.value_set("running")])
        for index in range(1, request.steps + 1):
            if per_step:
                workflow.upsert_search_attributes([TASK_STEP.value_set(index)])
            await _run_step(NOOP_STEP, _step_input(request, index))
        if request.task_events:
            await _record(request, "task.completed.v1", {"result": {"steps": request.steps}})
        if per_step:
            workflow.upsert_search_attributes([TASK_STATUS.value_set("completed")])
        elif request.upserts == "lean":
            workflow.upsert_search_attributes(
                [TASK_STATUS.value_set("completed"), TASK_STEP.value_set(request.steps)]
            )
        return BenchPipelineResult(steps=request.steps)


@workflow.defn(name="BenchEmitEveryEvent")
class EmitEveryEventWorkflow:
    @workflow.run
    async def run(self, request: BenchPipelineInput) -> BenchPipelineResult:
        task_input = {"steps": request.steps, "step_seconds": 0, "progress_ticks": 0}
        await _record(
            request, "task.created.v1", {"task_type": "demo.pipeline", "input": task_input}
        )
        outputs: list[dict[str, Any]] = []
        for index in range(1, request.steps + 1):
            step = _step_input(request, index)
            common = {"index": index, "name": step.name, "total_steps": request.steps}
            await _record(request, "task.step.started.v1", {**common, "attempt": 1})
            started = workflow.now()
            done = await _run_step(NOOP_STEP, step)
            duration = (workflow.now() - started).total_seconds()
            await _record(
                request,
                "task.step.completed.v1",
                {**common, "output": done.output, "duration_seconds": duration},
            )
            outputs.append(done.output)
        await _record(request, "task.completed.v1", {"result": {"steps": request.steps}})
        return BenchPipelineResult(steps=request.steps)


@workflow.defn(name="BenchStreamedPipeline")
class StreamedPipelineWorkflow:
    @workflow.init
    def __init__(self, request: BenchPipelineInput) -> None:
        self.stream = WorkflowStream()

    @workflow.run
    async def run(self, request: BenchPipelineInput) -> BenchPipelineResult:
        events = self.stream.topic(STREAM_TOPIC)
        events.publish(_workflow_event(request.task_id, "task.created.v1"))
        for index in range(1, request.steps + 1):
            await _run_step(STREAMED_STEP, _step_input(request, index))
        events.publish(_workflow_event(request.task_id, "task.completed.v1"))
        return BenchPipelineResult(steps=request.steps)


@workflow.defn(name="BenchStreamedChat")
class StreamedChatWorkflow:
    @workflow.init
    def __init__(self, request: BenchChatInput) -> None:
        self.stream = WorkflowStream()

    @workflow.run
    async def run(self, request: BenchChatInput) -> int:
        await workflow.execute_activity(
            STREAMED_CHAT_STEP,
            request,
            start_to_close_timeout=timedelta(seconds=request.tokens * request.token_seconds + 60),
            heartbeat_timeout=STEP_HEARTBEAT_TIMEOUT,
            retry_policy=STEP_RETRY,
        )
        return request.tokens


def _workflow_event(task_id: str, event_type: str) -> dict[str, Any]:
    """A task-level event as the stream carries it (not timed: only step events are)."""
    return {
        "id": str(workflow.uuid4()),
        "type": event_type,
        "subject": task_id,
        "time": workflow.now().isoformat(),
    }
