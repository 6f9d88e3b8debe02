"""The task's control state and the operator's handles on it.

`TaskControl` is the part of `TaskWorkflow` a client reaches while the task runs: the
`pause`, `resume` and `cancel` signals (operators), the `control` update with the same
effect (the API: it learns whether the transition was taken), the `status` query, and
the status transitions
with the search attributes and details operators see. It is a base class of the
workflow (Temporal finds handlers on base classes), kept apart so the workflow module
reads as the run itself: steps, boundaries, events. Deterministic workflow code.
"""

from __future__ import annotations

import logging
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from schemas.size import cap_text
    from schemas.tasks import TaskStatus
    from schemas.workflow import (
        CONTROL_REFUSED,
        QUERY_STATUS,
        SIGNAL_CANCEL,
        SIGNAL_PAUSE,
        SIGNAL_RESUME,
        TASK_STATUS,
        TASK_STEP,
        UPDATE_CONTROL,
        ControlRequest,
        TaskStatusView,
    )


class TaskControl:
    def __init__(self) -> None:
        self._task_id = ""
        self._status = TaskStatus.PENDING
        self._pause_requested = False
        self._cancel_reason: str | None = None
        self._current_step: int | None = None
        self._failed_step: int | None = None
        self._total_steps: int | None = None
        # Set by the run (`PATCH_LEAN_SEARCH_ATTRIBUTES`): upsert only what changed.
        self._lean_search_attributes = False
        # Insertion-ordered, so cancelling them issues commands in a replayable order.
        self._running: dict[int, workflow.ActivityHandle[Any]] = {}

    @property
    def task_id(self) -> str:
        return self._task_id

    def _log(self, message: str, *, level: int = logging.INFO, **fields: Any) -> None:
        """A line through the workflow logger: skipped while replaying, so logged once per
        occurrence, with `workflow_id`/`run_id` added by the SDK and `task_id` here.
        Logging issues no command, so it needs no patch."""
        workflow.logger.log(level, message, extra={"task_id": self._task_id, **fields})

    def _set_status(self, status: TaskStatus) -> None:
        self._status = status
        if self._lean_search_attributes:
            self._upsert_changed(status)
        else:
            workflow.upsert_search_attributes([TASK_STATUS.value_set(status.value)])
        if status is not TaskStatus.RUNNING:
            workflow.set_current_details(f"{status.value} at step {self._current_step or 0}")

    def _upsert_changed(self, status: TaskStatus) -> None:
        """One upsert, only when `TaskStatus` changes from what the run shows (a start by
        `TaskClient` shows `running`), carrying `TaskStep` (the step it changed at) along."""
        shown = workflow.info().typed_search_attributes
        if shown.get(TASK_STATUS) == status.value:
            return
        updates: list[SearchAttributeUpdate[Any]] = [TASK_STATUS.value_set(status.value)]
        if self._current_step is not None and shown.get(TASK_STEP) != self._current_step:
            updates.append(TASK_STEP.value_set(self._current_step))
        workflow.upsert_search_attributes(updates)

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
        self._request_cancel(args[0] if args else None)

    def _request_cancel(self, reason: str | None) -> None:
        if self._status.terminal or self._cancel_reason is not None:
            return
        self._cancel_reason = cap_text(reason) if reason else "cancelled by request"
        for handle in self._running.values():
            handle.cancel()

    # An update is ordered with the signals and answered after the workflow applied it,
    # so a second request sees the first (a query right after a signal may not). A new
    # handler changes no existing history: no patch.

    @workflow.update(name=UPDATE_CONTROL)
    def control(self, request: ControlRequest) -> TaskStatusView:
        if request.action == SIGNAL_PAUSE:
            self._pause_requested = True
        elif request.action == SIGNAL_RESUME:
            self._pause_requested = False
        else:
            self._request_cancel(request.reason)
        return self.status()

    @control.validator
    def _validate_control(self, request: ControlRequest) -> None:
        refusal = self._control_refusal(request.action)
        if refusal is not None:
            raise ApplicationError(refusal, self._status.value, type=CONTROL_REFUSED)

    def _control_refusal(self, action: str) -> str | None:
        """Why `action` makes no sense now, or None (the API answers 409 with it)."""
        if self._status.terminal:
            return f"is {self._status.value}"
        # The intent, not the status: a task that is resuming is no longer paused.
        if action == SIGNAL_PAUSE and self._pause_requested:
            return "is already paused"
        if action == SIGNAL_RESUME and not self._pause_requested:
            return "is not paused"
        return None

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
