"""`open_task`: a run's `task.created.v1` and its claim on a slot, in one local activity;
`close_task`: its terminal event and the slot given back (schemas/opening.py says why).

Every part repeats safely, so a retried opening or closing answers the same: the events
are deduplicated by the ids the workflow gave them, a claim repeated for the same task
answers what it answered, and a release of a released slot does nothing
(store/admission.py).
"""

from __future__ import annotations

from temporalio import activity

from activities.admission import AdmissionActivities
from activities.recorder import EventRecorder
from activities.recording import record_for_workflow, record_many_for_workflow
from schemas.admission import AdmissionDecision, AdmissionRequest
from schemas.opening import (
    CLOSE_TASK,
    OPEN_TASK,
    ParkedLine,
    TaskClosing,
    TaskOpened,
    TaskOpening,
    admitted_data,
    queued_data,
)
from schemas.workflow import RecordEventInput, RecordEventResult
from telemetry.logs import bind_log_context


class OpeningActivities:
    def __init__(self, recorder: EventRecorder, admission: AdmissionActivities | None) -> None:
        self._recorder = recorder
        # None: a worker without the store's admission (then no task may name a limit).
        self._admission = admission

    @activity.defn(name=OPEN_TASK)
    async def open_task(self, request: TaskOpening) -> TaskOpened:
        info = activity.info()
        created = request.created
        bind_log_context(task_id=created.task_id, workflow_id=info.workflow_id)
        run_id = info.workflow_run_id
        opened = TaskOpened(
            created=await record_for_workflow(self._recorder, created, run_id),
            decision=await self._admission_activities().claim(request.admission),
        )
        if request.parked is not None and opened.decision.outcome == "admitted":
            # Both in one transaction: `task.queued.v1` then `task.admitted.v1`.
            line = _parked_line(created.task_id, request.admission, request.parked, opened.decision)
            await record_many_for_workflow(self._recorder, created.task_id, line, run_id)
            opened.parked_recorded = True
        return opened

    @activity.defn(name=CLOSE_TASK)
    async def close_task(self, request: TaskClosing) -> RecordEventResult:
        info = activity.info()
        bind_log_context(task_id=request.ending.task_id, workflow_id=info.workflow_id)
        recorded = await record_for_workflow(self._recorder, request.ending, info.workflow_run_id)
        await self._admission_activities().give_back(request.release)
        return recorded

    def _admission_activities(self) -> AdmissionActivities:
        if self._admission is None:
            # Retried like an unregistered `admission_acquire` was: a worker with the
            # store's admission can take it.
            raise RuntimeError(
                "this worker has no admission store: cannot claim or give back a slot"
            )
        return self._admission


def _parked_line(
    task_id: str, admission: AdmissionRequest, parked: ParkedLine, decision: AdmissionDecision
) -> tuple[RecordEventInput, RecordEventInput]:
    """The two events `TaskAdmission._admitted_parked` records, with the same data."""
    queued = RecordEventInput(
        event_id=parked.queued_event_id,
        task_id=task_id,
        event_type="task.queued.v1",
        data=queued_data(admission, parked.position, decision.running),
    )
    admitted = RecordEventInput(
        event_id=parked.admitted_event_id,
        task_id=task_id,
        event_type="task.admitted.v1",
        data=admitted_data(admission, parked.waited_seconds),
    )
    return queued, admitted
