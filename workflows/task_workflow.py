"""`TaskWorkflow`: one task = one workflow run. Deterministic code only.

The workflow owns what every task type shares: task-level events through
`_emit` (the `record_event` local activity, under a lock, so events from the
main loop and from handlers come out in one defined order), pause and cancel at
step boundaries, search attributes and details for operators, and the failure
events of attempts that could not report themselves. What a task *does* is its
type's runner (`workflows.registry`), which calls `run_step`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any, NoReturn, TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception
from temporalio.exceptions import TimeoutError as ActivityTimeoutError

with workflow.unsafe.imports_passed_through():
    from schemas.ids import step_failed_event_id
    from schemas.size import cap_text
    from schemas.tasks import TaskStatus
    from schemas.workflow import (
        INVALID_EVENT,
        QUERY_STATUS,
        RECORD_EVENT,
        REQUEST_CANCELLATION,
        SIGNAL_CANCEL,
        SIGNAL_PAUSE,
        SIGNAL_RESUME,
        STEP_FAILED,
        TASK_STATUS,
        TASK_STEP,
        TASK_WORKFLOW,
        RecordEventInput,
        RecordEventResult,
        RequestCancellationInput,
        TaskStatusView,
        TaskWorkflowInput,
        TaskWorkflowResult,
    )
    from workflows.demo import STEP_MAX_ATTEMPTS
    from workflows.registry import runner_for

# Patches: each guards a change of commands, so histories of older runs still replay.
# Retire one (docs/versioning.md) once no run that started before it can be open.
PATCH_TASK_STEP_ATTRIBUTE = "task-step-search-attribute"
PATCH_TIMEOUT_STEP_FAILED = "timeout-step-failed-event"
# Every cancel closes the run as Canceled in Temporal (issue 14): a native cancel during a
# step is a cancel, not a failure; a signalled cancel asks Temporal to cancel the run.
PATCH_CANCEL_CLOSES_CANCELED = "cancel-closes-canceled"
# A native cancel that reaches an event's recording (the local activity) records the event
# anyway and takes effect at the next step boundary: was a failed task (paused/resumed) or
# a run closed with no terminal event (task.created.v1).
PATCH_CANCEL_DURING_RECORD = "cancel-during-record"

RECORD_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=0,  # never give up on an event: the store may be down for a while
    non_retryable_error_types=[INVALID_EVENT],
)
STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=STEP_MAX_ATTEMPTS,
    non_retryable_error_types=[STEP_FAILED, INVALID_EVENT],
)
STEP_HEARTBEAT_TIMEOUT = timedelta(seconds=10)

ResultT = TypeVar("ResultT", bound=BaseModel)


class _CancelRequestedError(Exception):
    """The `cancel` signal arrived; unwinds the runner."""


def _native_cancel_reason() -> str:
    """The operator's reason for a Temporal-native cancel, when Temporal carries one."""
    return cap_text(workflow.cancellation_reason() or "") or "cancelled through Temporal"


@workflow.defn(name=TASK_WORKFLOW)
class TaskWorkflow:
    def __init__(self) -> None:
        self._task_id = ""
        self._status = TaskStatus.PENDING
        self._pause_requested = False
        self._cancel_reason: str | None = None
        self._current_step: int | None = None
        self._failed_step: int | None = None
        self._total_steps: int | None = None
        self._emit_lock = asyncio.Lock()
        self._boundary_lock = asyncio.Lock()
        # Insertion-ordered, so cancelling them issues commands in a replayable order.
        self._running: dict[int, workflow.ActivityHandle[Any]] = {}

    @property
    def task_id(self) -> str:
        return self._task_id

    @workflow.run
    async def run(self, request: TaskWorkflowInput) -> TaskWorkflowResult:
        self._task_id = request.task_id
        await self._emit(
            "task.created.v1",
            {"task_type": request.task_type, "input": request.input, "owner": request.owner},
        )
        self._set_status(TaskStatus.RUNNING)
        self._log("task started", task_type=request.task_type)
        try:
            runner = runner_for(request.task_type)
            if runner is None:
                raise ApplicationError(
                    f"unknown task type {request.task_type!r}", type="UnknownTaskType"
                )
            result = await runner(self, request.input)
            await self._step_boundary()
        except _CancelRequestedError:
            ending = await self._finish_cancelled(self._cancel_reason)
            if not workflow.patched(PATCH_CANCEL_CLOSES_CANCELED):
                return ending
            await self._close_as_canceled()
        except asyncio.CancelledError:
            # An operator's Temporal-native Cancel: same ending as the signal.
            await self._finish_cancelled(_native_cancel_reason())
            raise
        except (ActivityError, ApplicationError) as exc:
            cause = exc.cause if isinstance(exc, ActivityError) and exc.cause else exc
            message = cap_text(str(cause) or type(cause).__name__)
            step = self._failed_step or self._current_step
            await self._emit("task.failed.v1", {"error": message, "step": step})
            self._set_status(TaskStatus.FAILED)
            self._log("task failed", level=logging.WARNING, error=message, step=step)
            raise ApplicationError(f"task failed: {message}", non_retryable=True) from exc
        await self._emit("task.completed.v1", {"result": result})
        self._set_status(TaskStatus.COMPLETED)
        self._log("task completed")
        return TaskWorkflowResult(status=TaskStatus.COMPLETED, result=result)

    # --- StepContext: what runners call ------------------------------------------------

    def set_total_steps(self, total: int) -> None:
        self._total_steps = total

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
        if workflow.patched(PATCH_TASK_STEP_ATTRIBUTE):
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
                self._cancel_reason = _native_cancel_reason()
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
        await self._emit("task.cancelled.v1", {"reason": reason})
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
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RECORD_RETRY,
        )
        await workflow.wait_condition(lambda: False)  # ends with the cancellation
        raise AssertionError("a wait for nothing returned")

    async def _emit(
        self, event_type: str, data: dict[str, Any], *, event_id: str | None = None
    ) -> RecordEventResult:
        async with self._emit_lock:
            record = RecordEventInput(
                event_id=event_id or str(workflow.uuid4()),
                task_id=self._task_id,
                event_type=event_type,
                data=data,
            )
            try:
                return await self._record(record)
            except ActivityError as exc:
                if not (
                    is_cancelled_exception(exc)
                    and workflow.cancellation_reason() is not None
                    and workflow.patched(PATCH_CANCEL_DURING_RECORD)
                ):
                    raise
            # A Temporal-native cancel interrupted the recording. Record it anyway (same
            # event id: recorded once even if the interrupted attempt committed), then let
            # the cancel take effect where every cancel does, at the next step boundary.
            if self._cancel_reason is None:
                self._cancel_reason = _native_cancel_reason()
            self._log("native cancel reached a recording", event_type=event_type)
            return await self._record(record)

    async def _record(self, record: RecordEventInput) -> RecordEventResult:
        result: RecordEventResult = await workflow.execute_local_activity(
            RECORD_EVENT,
            record,
            result_type=RecordEventResult,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RECORD_RETRY,
        )
        return result

    def _log(self, message: str, *, level: int = logging.INFO, **fields: Any) -> None:
        """A line through the workflow logger: skipped while replaying, so logged once per
        occurrence, with `workflow_id`/`run_id` added by the SDK and `task_id` here.
        Logging issues no command, so it needs no patch."""
        workflow.logger.log(level, message, extra={"task_id": self._task_id, **fields})

    def _set_status(self, status: TaskStatus) -> None:
        self._status = status
        workflow.upsert_search_attributes([TASK_STATUS.value_set(status.value)])
        if status is not TaskStatus.RUNNING:
            workflow.set_current_details(f"{status.value} at step {self._current_step or 0}")

    # Signal handlers take any arguments Temporal can deliver (`*args`, decoded without a
    # type): a payload of the wrong count or type is logged and ignored, never a failed
    # workflow task that would wedge the task. Decoding issues no command: no patch.

    @workflow.signal(name=SIGNAL_PAUSE)
    def pause(self, *args: Any) -> None:
        if args:
            self._ignored_signal("pause", "takes no arguments", args)
        elif not self._status.terminal:
            self._pause_requested = True

    @workflow.signal(name=SIGNAL_RESUME)
    def resume(self, *args: Any) -> None:
        if args:
            self._ignored_signal("resume", "takes no arguments", args)
        else:
            self._pause_requested = False

    @workflow.signal(name=SIGNAL_CANCEL)
    def cancel(self, *args: Any) -> None:
        if len(args) > 1 or (args and not isinstance(args[0], str | None)):
            self._ignored_signal("cancel", "takes at most one text argument (the reason)", args)
            return
        if self._status.terminal or self._cancel_reason is not None:
            return
        reason = args[0] if args else None
        self._cancel_reason = cap_text(reason) if reason else "cancelled by request"
        for handle in self._running.values():
            handle.cancel()

    def _ignored_signal(self, name: str, why: str, args: tuple[Any, ...]) -> None:
        shown = cap_text(repr(args), 500)
        self._log(f"signal {name} ignored: {why}", level=logging.WARNING, arguments=shown)

    @workflow.query(name=QUERY_STATUS)
    def status(self) -> TaskStatusView:
        return TaskStatusView(
            task_id=self._task_id,
            status=self._status,
            current_step=self._current_step,
            total_steps=self._total_steps,
            pause_requested=self._pause_requested,
            cancel_requested=self._cancel_reason is not None,
        )
