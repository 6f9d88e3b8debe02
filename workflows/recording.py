"""`TaskRecording`: how a task's own events are recorded, one at a time and in order.

A base class of `TaskWorkflow` (beside `TaskAdmission`, `TaskInputs`, `TaskControl`):
`_emit` records one event through the `record_event` local activity, `_open` a run's
`task.created.v1` with its claim through `open_task`, `_close` its terminal event with
the slot's release through `close_task` (schemas/opening.py). All hold one lock, so
events from the main loop and from handlers come out in one defined order, and all
record anyway when a Temporal-native cancel interrupts them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from schemas.admission import AdmissionRelease, AdmissionRequest
    from schemas.opening import CLOSE_TASK, OPEN_TASK, TaskClosing, TaskOpened
    from schemas.workflow import (
        RECORD_EVENT,
        RecordEventInput,
        RecordEventResult,
        TaskWorkflowInput,
    )
    from workflows.policies import (
        LOCAL_ACTIVITY_TIMEOUT,
        PATCH_CANCEL_DURING_RECORD,
        PATCH_ONE_CLOSING,
        RECORD_RETRY,
        native_cancel_reason,
    )

from workflows.admission import TaskAdmission

RecordedT = TypeVar("RecordedT")


class TaskRecording(TaskAdmission):
    def __init__(self) -> None:
        super().__init__()
        self._emit_lock = asyncio.Lock()

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
            return await self._despite_native_cancel(lambda: self._record(record), event_type)

    async def _open(
        self, request: TaskWorkflowInput, created: dict[str, Any], claim: AdmissionRequest
    ) -> TaskOpened:
        """`task.created.v1` and the claim in one local activity (schemas/opening.py)."""
        async with self._emit_lock:
            record = RecordEventInput(
                event_id=str(workflow.uuid4()),
                task_id=self._task_id,
                event_type="task.created.v1",
                data=created,
            )
            opening = self._opening(request, record, claim)
            return await self._despite_native_cancel(
                lambda: workflow.execute_local_activity(
                    OPEN_TASK,
                    opening,
                    result_type=TaskOpened,
                    start_to_close_timeout=LOCAL_ACTIVITY_TIMEOUT,
                    retry_policy=RECORD_RETRY,
                ),
                "task.created.v1",
            )

    async def _close(self, event_type: str, data: dict[str, Any]) -> None:
        """The run's terminal event, then its slot given back."""
        if not await self._close_in_one(event_type, data):
            await self._emit(event_type, data)
            await self._release_slot()

    async def _close_in_one(self, event_type: str, data: dict[str, Any]) -> bool:
        """The terminal event and the release of a task holding a slot in one local
        activity (`close_task`, schemas/opening.py); False, having done nothing, for a
        task without one or a run from before `one-closing` (two local activities)."""
        if self._admission is None or not workflow.patched(PATCH_ONE_CLOSING):
            return False
        closing = TaskClosing(
            ending=RecordEventInput(
                event_id=str(workflow.uuid4()),
                task_id=self._task_id,
                event_type=event_type,
                data=data,
            ),
            release=AdmissionRelease(task_id=self._admission.task_id),
        )
        async with self._emit_lock:
            await self._despite_native_cancel(
                lambda: workflow.execute_local_activity(
                    CLOSE_TASK,
                    closing,
                    result_type=RecordEventResult,
                    start_to_close_timeout=LOCAL_ACTIVITY_TIMEOUT,
                    retry_policy=RECORD_RETRY,
                ),
                event_type,
            )
        self._admission = None
        return True

    async def _despite_native_cancel(
        self, recording: Callable[[], Awaitable[RecordedT]], event_type: str
    ) -> RecordedT:
        try:
            return await recording()
        except ActivityError as exc:
            if not (
                is_cancelled_exception(exc)
                and workflow.cancellation_reason() is not None
                and workflow.patched(PATCH_CANCEL_DURING_RECORD)
            ):
                raise
        # A Temporal-native cancel interrupted the recording. Record it anyway (same
        # event ids: recorded once even if the interrupted attempt committed), then let
        # the cancel take effect where every cancel does, at the next step boundary.
        if self._cancel_reason is None:
            self._cancel_reason = native_cancel_reason()
        self._log("native cancel reached a recording", event_type=event_type)
        return await recording()

    async def _record(self, record: RecordEventInput) -> RecordEventResult:
        result: RecordEventResult = await workflow.execute_local_activity(
            RECORD_EVENT,
            record,
            result_type=RecordEventResult,
            start_to_close_timeout=LOCAL_ACTIVITY_TIMEOUT,
            retry_policy=RECORD_RETRY,
        )
        return result
