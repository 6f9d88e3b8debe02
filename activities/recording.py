"""`record_event`: the local activity behind the workflow's `emit(...)`."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.names import INVALID_EVENT, RECORD_EVENT
from activities.recorder import EventRecorder
from schemas import InvalidEventError
from schemas.tasks import RecordEventInput, RecordEventResult
from telemetry.logs import bind_log_context


class RecordingActivities:
    def __init__(self, recorder: EventRecorder) -> None:
        self._recorder = recorder

    @activity.defn(name=RECORD_EVENT)
    async def record_event(self, request: RecordEventInput) -> RecordEventResult:
        bind_log_context(task_id=request.task_id, workflow_id=activity.info().workflow_id)
        try:
            return await self._recorder.record(
                event_id=request.event_id,
                task_id=request.task_id,
                event_type=request.event_type,
                data=request.data,
            )
        except InvalidEventError as exc:
            raise ApplicationError(str(exc), type=INVALID_EVENT, non_retryable=True) from exc
