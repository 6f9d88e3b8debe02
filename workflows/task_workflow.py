"""`TaskWorkflow`: one task = one workflow run. Deterministic code only.

The workflow owns what every task type shares: task-level events through
`_emit` and the run's opening through `_open` (workflows/recording.py), pause and cancel at
step boundaries, search attributes and details for operators, and the failure
events of attempts that could not report themselves. What a task *does* is its
type's runner (`workflows.registry`), which calls `run_step`. The signals, the
query and the status transitions are `workflows.control` (a base class); patch ids,
retry policies and timeouts are `workflows.policies`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any, NoReturn, TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as ActivityTimeoutError

with workflow.unsafe.imports_passed_through():
    from schemas.admission_claim import admission_claim
    from schemas.ids import step_failed_event_id
    from schemas.size import cap_text
    from schemas.tasks import TaskStatus
    from schemas.workflow import (
        REQUEST_CANCELLATION,
        TASK_STEP,
        TASK_WORKFLOW,
        RequestCancellationInput,
        TaskWorkflowInput,
        TaskWorkflowResult,
    )
    from workflows.demo import STEP_MAX_ATTEMPTS
    from workflows.policies import (
        LOCAL_ACTIVITY_TIMEOUT,
        PATCH_CANCEL_CLOSES_CANCELED,
        PATCH_DEBOUNCED,
        PATCH_LEAN_SEARCH_ATTRIBUTES,
        PATCH_ONE_OPENING,
        PATCH_TASK_STEP_ATTRIBUTE,
        PATCH_TIMEOUT_STEP_FAILED,
        RECORD_RETRY,
        STEP_HEARTBEAT_TIMEOUT,
        STEP_RETRY,
        native_cancel_reason,
    )
    from workflows.registry import runner_for

from workflows.recording import TaskRecording

ResultT = TypeVar("ResultT", bound=BaseModel)


class _CancelRequestedError(Exception):
    """The `cancel` signal arrived; unwinds the runner."""


@workflow.defn(name=TASK_WORKFLOW)
class TaskWorkflow(TaskRecording):  # _emit; admission; TaskInputs (wait_for_input); TaskControl
    def __init__(self) -> None:
        super().__init__()
        self._boundary_lock = asyncio.Lock()

    @workflow.run
    async def run(self, request: TaskWorkflowInput) -> TaskWorkflowResult:
        self._task_id = request.task_id
        self._lean_search_attributes = workflow.patched(PATCH_LEAN_SEARCH_ATTRIBUTES)
        created: dict[str, Any] = {
            "task_type": request.task_type,
            "input": request.input,
            "owner": request.owner,
        }
        if request.debounced is not None and workflow.patched(PATCH_DEBOUNCED):
            created["debounced"] = request.debounced.model_dump(mode="json")
        runner = runner_for(request.task_type)
        opened = None
        # Only a task with a limit has more than its event to open with: others keep one
        # `record_event` and issue no patch marker (a history event per task, issue 15).
        claim = admission_claim(request)
        if runner is not None and claim is not None and workflow.patched(PATCH_ONE_OPENING):
            opened = await self._open(request, created, claim)
        else:
            await self._emit("task.created.v1", created)
        self._set_status(TaskStatus.RUNNING)
        self._log("task started", task_type=request.task_type)
        try:
            if runner is None:
                raise ApplicationError(
                    f"unknown task type {request.task_type!r}", type="UnknownTaskType"
                )
            await self._admit(request, claim, opened)
            if self._admission is not None or self._admission_refused:
                await self._step_boundary()  # refused or cancelled while queued: cancel
            result = await runner(self, request.input)
            await self._step_boundary()
        except _CancelRequestedError:
            ending = await self._finish_cancelled(self._cancel_reason)
            if not workflow.patched(PATCH_CANCEL_CLOSES_CANCELED):
                return ending
            await self._close_as_canceled()
        except asyncio.CancelledError:
            # An operator's Temporal-native Cancel: same ending as the signal.
            await self._finish_cancelled(native_cancel_reason())
            raise
        except (ActivityError, ApplicationError) as exc:
            cause = exc.cause if isinstance(exc, ActivityError) and exc.cause else exc
            message = cap_text(str(cause) or type(cause).__name__)
            step = self._failed_step or self._current_step
            failed = {"error": message, "step": step}
            closed = await self._close_in_one("task.failed.v1", failed)
            if not closed:
                await self._emit("task.failed.v1", failed)
            self._set_status(TaskStatus.FAILED)
            self._log("task failed", level=logging.WARNING, error=message, step=step)
            if not closed:
                await self._release_slot()
            raise ApplicationError(f"task failed: {message}", non_retryable=True) from exc
        await self._close("task.completed.v1", {"result": result})
        self._set_status(TaskStatus.COMPLETED)
        self._log("task completed")
        return TaskWorkflowResult(status=TaskStatus.COMPLETED, result=result)

    # --- StepContext: what runners call ------------------------------------------------

    def set_total_steps(self, total: int) -> None:
        self._total_steps = total

    async def emit_event(self, event_type: str, data: dict[str, Any]) -> None:
        # Only runners that use the authoring API (workflows/authoring.py) call this, and
        # none did before it existed: older histories replay unchanged without a patch.
        await self._emit(event_type, data)

    async def delay(self, seconds: float) -> None:
        # Only inputs that ask for it reach this timer, and no input from before it
        # existed can, so older histories replay unchanged without a patch.
        workflow.set_current_details(f"starting in {seconds:g} s")
        with contextlib.suppress(TimeoutError):  # the delay passed: the usual way out
            await workflow.wait_condition(
                lambda: self._cancel_reason is not None, timeout=timedelta(seconds=seconds)
            )

    async def run_step(
        self,
        activity: str,
        step: BaseModel,
        *,
        index: int,
        name: str,
        result_type: type[ResultT],
        attempt_timeout: timedelta,
    ) -> ResultT:
        await self._step_boundary()
        self._current_step = index
        if not self._lean_search_attributes and workflow.patched(PATCH_TASK_STEP_ATTRIBUTE):
            workflow.upsert_search_attributes([TASK_STEP.value_set(index)])
        workflow.set_current_details(f"step {index} of {self._total_steps} running")
        handle = workflow.start_activity(
            activity,
            step,
            result_type=result_type,
            start_to_close_timeout=attempt_timeout,
            heartbeat_timeout=STEP_HEARTBEAT_TIMEOUT,
            retry_policy=STEP_RETRY,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        self._running[index] = handle
        try:
            result: ResultT = await handle
            return result
        except ActivityError as exc:
            if self._cancel_reason is not None:
                raise _CancelRequestedError from None
            if workflow.cancellation_reason() is not None and workflow.patched(
                PATCH_CANCEL_CLOSES_CANCELED
            ):
                # A native cancel reached the running step first: a cancel, not a failure.
                self._cancel_reason = native_cancel_reason()
                raise _CancelRequestedError from None
            self._failed_step = self._failed_step or index
            if isinstance(exc.cause, ActivityTimeoutError) and workflow.patched(
                PATCH_TIMEOUT_STEP_FAILED
            ):
                await self._last_attempt_timed_out(index, name, exc)
            raise
        finally:
            self._running.pop(index, None)

    # --- the shared machinery ----------------------------------------------------------

    async def _last_attempt_timed_out(self, index: int, name: str, exc: ActivityError) -> None:
        """The last attempt timed out and could not say so itself: say it, once.

        Same event id as the activity would use, so if it did speak, this dedupes.
        """
        info = workflow.info()
        attempt = STEP_MAX_ATTEMPTS
        await self._emit(
            "task.step.failed.v1",
            {
                "index": index,
                "name": name,
                "error": f"attempt {attempt} timed out: {exc.cause}",
                "attempt": attempt,
                "will_retry": False,
            },
            event_id=step_failed_event_id(info.workflow_id, info.run_id, exc.activity_id, attempt),
        )

    async def _step_boundary(self) -> None:
        """Where pause and cancel take effect: between steps, never inside one.

        Parallel steps all pass through here; the lock makes the first one emit
        `task.paused.v1` (and later `task.resumed.v1`) and the others just wait.
        """
        if self._cancel_reason is not None:
            raise _CancelRequestedError
        if not self._pause_requested:
            return
        async with self._boundary_lock:
            if self._pause_requested and self._status is not TaskStatus.PAUSED:
                await self._emit("task.paused.v1", {"reason": None})
                self._set_status(TaskStatus.PAUSED)
                self._log("task paused", step=self._current_step)
            await workflow.wait_condition(
                lambda: not self._pause_requested or self._cancel_reason is not None
            )
            if self._cancel_reason is not None:
                raise _CancelRequestedError
            if self._status is TaskStatus.PAUSED:
                await self._emit("task.resumed.v1", {})
                self._set_status(TaskStatus.RUNNING)
                self._log("task resumed", step=self._current_step)

    async def _finish_cancelled(self, reason: str | None) -> TaskWorkflowResult:
        await self._close("task.cancelled.v1", {"reason": reason})
        self._set_status(TaskStatus.CANCELLED)
        self._log("task cancelled", reason=reason)
        return TaskWorkflowResult(status=TaskStatus.CANCELLED, error=reason)

    async def _close_as_canceled(self) -> NoReturn:
        """Ask Temporal to cancel this run, then wait for it: the run closes as Canceled,
        like a native cancel. Raises the cancellation (`asyncio.CancelledError`)."""
        if workflow.cancellation_reason() is not None:
            # Temporal asked already (it reached a running step first): close as asked.
            raise asyncio.CancelledError(workflow.cancellation_reason())
        await workflow.execute_local_activity(
            REQUEST_CANCELLATION,
            RequestCancellationInput(task_id=self._task_id),
            start_to_close_timeout=LOCAL_ACTIVITY_TIMEOUT,
            retry_policy=RECORD_RETRY,
        )
        await workflow.wait_condition(lambda: False)  # ends with the cancellation
        raise AssertionError("a wait for nothing returned")
