"""`TaskWorkflow`: one task = one workflow run. Deterministic code only.

Task-level events go through `_emit`, which runs the `record_event` local
activity under a lock, so events from the main loop and from handlers come out
in one defined order. Step activities record their own step events.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.names import DEMO_STEP, INVALID_EVENT, RECORD_EVENT, STEP_FAILED
    from schemas.ids import step_failed_event_id
    from schemas.tasks import (
        DemoPipelineInput,
        DemoStepInput,
        DemoStepResult,
        RecordEventInput,
        RecordEventResult,
        TaskStatus,
        TaskStatusView,
        TaskWorkflowInput,
        TaskWorkflowResult,
    )
    from temporal.search_attributes import TASK_STATUS, TASK_STEP

# Patches: each guards a change of commands, so histories of older runs still replay.
# Retire one (docs/versioning.md) once no run that started before it can be open.
PATCH_TASK_STEP_ATTRIBUTE = "task-step-search-attribute"
PATCH_TIMEOUT_STEP_FAILED = "timeout-step-failed-event"

RECORD_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=0,  # never give up on an event: the store may be down for a while
    non_retryable_error_types=[INVALID_EVENT],
)
STEP_MAX_ATTEMPTS = 3
STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=STEP_MAX_ATTEMPTS,
    non_retryable_error_types=[STEP_FAILED],
)
STEP_HEARTBEAT_TIMEOUT = timedelta(seconds=10)


class _CancelRequestedError(Exception):
    """The `cancel` signal arrived; unwinds the step loop."""


@workflow.defn(name="TaskWorkflow")
class TaskWorkflow:
    def __init__(self) -> None:
        self._task_id = ""
        self._status = TaskStatus.PENDING
        self._pause_requested = False
        self._cancel_reason: str | None = None
        self._current_step: int | None = None
        self._total_steps: int | None = None
        self._emit_lock = asyncio.Lock()
        self._running_step: workflow.ActivityHandle[DemoStepResult] | None = None

    @workflow.run
    async def run(self, request: TaskWorkflowInput) -> TaskWorkflowResult:
        self._task_id = request.task_id
        await self._emit(
            "task.created.v1",
            {"task_type": request.task_type, "input": request.input, "owner": request.owner},
        )
        self._set_status(TaskStatus.RUNNING)
        try:
            if request.task_type != "demo.pipeline":
                raise ApplicationError(
                    f"unknown task type {request.task_type!r}", type="UnknownTaskType"
                )
            result = await self._run_demo(DemoPipelineInput.model_validate(request.input))
        except _CancelRequestedError:
            return await self._finish_cancelled(self._cancel_reason)
        except asyncio.CancelledError:
            # An operator's Temporal-native Cancel: same ending as the signal.
            await self._finish_cancelled("cancelled through Temporal")
            raise
        except (ActivityError, ApplicationError) as exc:
            cause = exc.cause if isinstance(exc, ActivityError) and exc.cause else exc
            message = str(cause) or type(cause).__name__
            await self._emit("task.failed.v1", {"error": message, "step": self._current_step})
            self._set_status(TaskStatus.FAILED)
            raise ApplicationError(f"task failed: {message}", non_retryable=True) from exc
        await self._emit("task.completed.v1", {"result": result})
        self._set_status(TaskStatus.COMPLETED)
        return TaskWorkflowResult(status=TaskStatus.COMPLETED, result=result)

    async def _run_demo(self, params: DemoPipelineInput) -> dict[str, Any]:
        self._total_steps = params.steps
        outputs: list[dict[str, Any]] = []
        for index in range(1, params.steps + 1):
            await self._step_boundary()
            self._current_step = index
            if workflow.patched(PATCH_TASK_STEP_ATTRIBUTE):
                workflow.upsert_search_attributes([TASK_STEP.value_set(index)])
            workflow.set_current_details(f"step {index} of {params.steps} running")
            step = DemoStepInput(
                task_id=self._task_id,
                index=index,
                total_steps=params.steps,
                name=f"step-{index}",
                step_seconds=params.step_seconds,
                progress_ticks=params.progress_ticks,
                fail=params.fail_at_step == index,
                max_attempts=STEP_MAX_ATTEMPTS,
                hang_attempts=params.hang_attempts if params.hang_at_step == index else 0,
            )
            timeout = params.step_timeout_seconds or params.step_seconds * 2 + 30
            activity_task = workflow.start_activity(
                DEMO_STEP,
                step,
                result_type=DemoStepResult,
                start_to_close_timeout=timedelta(seconds=timeout),
                heartbeat_timeout=STEP_HEARTBEAT_TIMEOUT,
                retry_policy=STEP_RETRY,
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
            self._running_step = activity_task
            try:
                done = await activity_task
            except ActivityError as exc:
                if self._cancel_reason is not None:
                    raise _CancelRequestedError from None
                if isinstance(exc.cause, TimeoutError) and workflow.patched(
                    PATCH_TIMEOUT_STEP_FAILED
                ):
                    await self._last_attempt_timed_out(step, exc)
                raise
            finally:
                self._running_step = None
            outputs.append(done.output)
        await self._step_boundary()
        return {"steps": params.steps, "outputs": outputs}

    async def _last_attempt_timed_out(self, step: DemoStepInput, exc: ActivityError) -> None:
        """The last attempt timed out and could not say so itself: say it, once.

        Same event id as the activity would use, so if it did speak, this dedupes.
        """
        info = workflow.info()
        attempt = STEP_MAX_ATTEMPTS
        await self._emit(
            "task.step.failed.v1",
            {
                "index": step.index,
                "name": step.name,
                "error": f"attempt {attempt} timed out: {exc.cause}",
                "attempt": attempt,
                "will_retry": False,
            },
            event_id=step_failed_event_id(info.workflow_id, info.run_id, exc.activity_id, attempt),
        )

    async def _step_boundary(self) -> None:
        """Where pause and cancel take effect: between steps, never inside one."""
        if self._cancel_reason is not None:
            raise _CancelRequestedError
        if not self._pause_requested:
            return
        await self._emit("task.paused.v1", {"reason": None})
        self._set_status(TaskStatus.PAUSED)
        await workflow.wait_condition(
            lambda: not self._pause_requested or self._cancel_reason is not None
        )
        if self._cancel_reason is not None:
            raise _CancelRequestedError
        await self._emit("task.resumed.v1", {})
        self._set_status(TaskStatus.RUNNING)

    async def _finish_cancelled(self, reason: str | None) -> TaskWorkflowResult:
        await self._emit("task.cancelled.v1", {"reason": reason})
        self._set_status(TaskStatus.CANCELLED)
        return TaskWorkflowResult(status=TaskStatus.CANCELLED, error=reason)

    async def _emit(
        self, event_type: str, data: dict[str, Any], *, event_id: str | None = None
    ) -> RecordEventResult:
        async with self._emit_lock:
            result: RecordEventResult = await workflow.execute_local_activity(
                RECORD_EVENT,
                RecordEventInput(
                    event_id=event_id or str(workflow.uuid4()),
                    task_id=self._task_id,
                    event_type=event_type,
                    data=data,
                ),
                result_type=RecordEventResult,
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RECORD_RETRY,
            )
            return result

    def _set_status(self, status: TaskStatus) -> None:
        self._status = status
        workflow.upsert_search_attributes([TASK_STATUS.value_set(status.value)])
        if status is not TaskStatus.RUNNING:
            workflow.set_current_details(f"{status.value} at step {self._current_step or 0}")

    @workflow.signal
    def pause(self) -> None:
        if not self._status.terminal:
            self._pause_requested = True

    @workflow.signal
    def resume(self) -> None:
        self._pause_requested = False

    @workflow.signal
    def cancel(self, reason: str | None = None) -> None:
        if self._status.terminal or self._cancel_reason is not None:
            return
        self._cancel_reason = reason or "cancelled by request"
        if self._running_step is not None:
            self._running_step.cancel()

    @workflow.query
    def status(self) -> TaskStatusView:
        return TaskStatusView(
            task_id=self._task_id,
            status=self._status,
            current_step=self._current_step,
            total_steps=self._total_steps,
            pause_requested=self._pause_requested,
            cancel_requested=self._cancel_reason is not None,
        )
