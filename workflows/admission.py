"""The task workflow's side of concurrency keys (docs/flow-control.md).

`TaskAdmission` is a base class of `TaskWorkflow`: before its first step a task
whose input names a concurrency limit asks `admission_acquire` for a slot of its
key. Admitted, it runs on; queued, it records `task.queued.v1` (with its
position), shows status `queued` and waits for the `admitted` signal (or a
cancel), then records `task.admitted.v1`; refused (`cancel_newest`), it is
cancelled with the reason. Whatever way the run ends in its own code, it gives
the slot back (`admission_release`); a run that ends outside it (terminate,
timeout) has its slot freed by the reconciler. Only inputs with a
`concurrency_limit` reach any of this, and none existed before it, but the
first command is still behind `PATCH_ADMISSION`. A parked task (queued by the API
before its run began, `parked_position` in its input) records its line once admitted,
behind `PATCH_PARKED_ADMISSION`; not admitted yet, it waits as any queued task.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from schemas.admission import (
        ADMISSION_ACQUIRE,
        ADMISSION_RELEASE,
        SIGNAL_ADMITTED,
        AdmissionDecision,
        AdmissionRelease,
        AdmissionRequest,
    )
    from schemas.opening import (
        ParkedLine,
        TaskOpened,
        TaskOpening,
        admitted_data,
        queued_data,
    )
    from schemas.tasks import TaskStatus
    from schemas.workflow import RecordEventInput, TaskWorkflowInput
    from workflows.policies import (
        LOCAL_ACTIVITY_TIMEOUT,
        PATCH_ADMISSION,
        PATCH_PARKED_ADMISSION,
        RECORD_RETRY,
    )

from workflows.inputs import TaskInputs


class TaskAdmission(TaskInputs):
    def __init__(self) -> None:
        super().__init__()
        self._admission: AdmissionRequest | None = None
        self._admitted = False
        # Set only on the admission path (inputs with a limit): the run must not start.
        self._admission_refused = False

    @workflow.signal(name=SIGNAL_ADMITTED)
    def admitted(self) -> None:
        self._admitted = True

    async def _admit(
        self,
        request: TaskWorkflowInput,
        admission: AdmissionRequest | None,
        opened: TaskOpened | None = None,
    ) -> None:
        """Hold a slot of the task's key before the first step, waiting in line if needed.
        A task that is not to run (refused, or cancelled while queued) returns with its
        cancel reason set: the step boundary that follows takes the cancel path.
        `admission`: the run's claim (`admission_claim`), None for a task without a limit;
        `opened`: the run's opening (`_open`) claimed already; None: claim here."""
        if admission is None:
            return
        if opened is not None:
            self._admission = admission
            decision = opened.decision
        else:
            if not workflow.patched(PATCH_ADMISSION):
                return
            self._admission = admission
            decision = await workflow.execute_local_activity(
                ADMISSION_ACQUIRE,
                self._admission,
                result_type=AdmissionDecision,
                start_to_close_timeout=LOCAL_ACTIVITY_TIMEOUT,
                retry_policy=RECORD_RETRY,
            )
        if decision.outcome == "cancelled":  # no ticket was made: nothing to give back
            self._admission = None
            self._admission_refused = True
            self._cancel_reason = decision.reason or "concurrency limit reached"
            return
        key = self._admission.concurrency_key
        if decision.outcome == "admitted":
            self._admitted = True
            position = request.parked_position
            if opened is not None and opened.parked_recorded:
                self._log("parked task admitted", concurrency_key=key, position=position)
            elif position is not None and workflow.patched(PATCH_PARKED_ADMISSION):
                await self._admitted_parked(position, decision)
            return
        await self._emit(
            "task.queued.v1", queued_data(self._admission, decision.position or 1, decision.running)
        )
        self._set_status(TaskStatus.QUEUED)
        self._log("task queued", concurrency_key=key, position=decision.position)
        queued_at = workflow.now()
        await workflow.wait_condition(lambda: self._admitted or self._cancel_reason is not None)
        if not self._admitted:
            self._admission_refused = True
            return  # cancelled while queued
        waited = (workflow.now() - queued_at).total_seconds()
        await self._emit("task.admitted.v1", admitted_data(self._admission, waited))
        self._set_status(TaskStatus.RUNNING)

    def _opening(
        self, request: TaskWorkflowInput, created: RecordEventInput, claim: AdmissionRequest
    ) -> TaskOpening:
        """What `_open` asks of `open_task`: the claim, and a parked task's line with the
        ids and wait its events would have had from `_admitted_parked`."""
        parked = None
        if request.parked_position is not None:
            parked = ParkedLine(
                position=request.parked_position,
                queued_event_id=str(workflow.uuid4()),
                admitted_event_id=str(workflow.uuid4()),
                waited_seconds=(workflow.now() - workflow.info().start_time).total_seconds(),
            )
        return TaskOpening(created=created, admission=claim, parked=parked)

    async def _admitted_parked(self, position: int, decision: AdmissionDecision) -> None:
        """A parked task (store/admission_park.py) woken with its slot: the line it
        waited in before its run began, as events of the run, in order."""
        if self._admission is None:
            return
        await self._emit("task.queued.v1", queued_data(self._admission, position, decision.running))
        waited = (workflow.now() - workflow.info().start_time).total_seconds()
        await self._emit("task.admitted.v1", admitted_data(self._admission, waited))
        self._log(
            "parked task admitted",
            concurrency_key=self._admission.concurrency_key,
            position=position,
        )

    async def _release_slot(self) -> None:
        """Give the slot (or the place in line) back; nothing for a task without a key."""
        if self._admission is None:
            return
        release = AdmissionRelease(task_id=self._admission.task_id)
        try:
            await self._run_release(release)
        except ActivityError as exc:
            # A Temporal-native cancel interrupted it: give the slot back anyway (a release
            # is idempotent), as `_emit` records an interrupted event anyway.
            if not is_cancelled_exception(exc) or workflow.cancellation_reason() is None:
                raise
            await self._run_release(release)
        self._admission = None

    async def _run_release(self, release: AdmissionRelease) -> None:
        await workflow.execute_local_activity(
            ADMISSION_RELEASE,
            release,
            start_to_close_timeout=LOCAL_ACTIVITY_TIMEOUT,
            retry_policy=RECORD_RETRY,
        )
