"""`admission_acquire` / `admission_release`: a task takes and gives back a slot of its
concurrency key (store/admission.py), and the tasks its change admits or stops are
told through Temporal signals after the commit (`Waker`): a parked task
(store/admission_park.py) with Signal-With-Start, which ends its start delay.

Both are local activities of the task's workflow: a claim is one short Postgres
transaction, not worth a round trip through the task queue. A signal lost to a
crash between commit and send is sent again by the reconciler's keeper
(worker/admission_keeper.py): tickets stay `woken = false` until it went out.
"""

from __future__ import annotations

import logging
from typing import Protocol

from pydantic import ValidationError
from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from schemas.admission import (
    ADMISSION_ACQUIRE,
    ADMISSION_RELEASE,
    SIGNAL_ADMITTED,
    AdmissionDecision,
    AdmissionRelease,
    AdmissionRequest,
)
from schemas.workflow import SIGNAL_CANCEL, TaskWorkflowInput, workflow_id_for
from store.admission import Admission, AdmissionStore
from store.admission_park import ParkedStart, parked_starts
from store.admission_sweep import mark_woken
from telemetry.logs import bind_log_context

log = logging.getLogger(__name__)


class Starter(Protocol):
    """Starts a parked task's run with Signal-With-Start (temporal/tasks.py `TaskClient`):
    False when its run is closed and must not start again."""

    async def wake(
        self, request: TaskWorkflowInput, *, request_hash: str, request_nonce: str, signal: str
    ) -> bool: ...


class Waker:
    """Signals the tasks an admission change concerns. A task whose run is gone (closed
    while it waited), or a parked one whose stored start does not validate (a row that
    no release of the API could have written), gives its slot straight back, which may
    admit the next one."""

    def __init__(
        self, client: Client, store: AdmissionStore, starter: Starter | None = None
    ) -> None:
        self._client = client
        self._store = store
        # Wakes parked tasks (store/admission_park.py); without it they are signalled,
        # and run when their start delay ends.
        self._starter = starter
        self.woken = 0
        self.cancelled = 0
        self.unreadable = 0

    async def tell(self, outcome: Admission) -> None:
        for task_id, reason in outcome.to_cancel:
            await self._signal(task_id, SIGNAL_CANCEL, reason)
            self.cancelled += 1
            log.info("admission cancels a task", extra={"task_id": task_id, "reason": reason})
        pending = list(outcome.granted)
        parked = await self._parked(pending)
        while pending:
            task_id = pending.pop(0)
            if await self._wake(task_id, parked.get(task_id)):
                await mark_woken(self._store.pool, [task_id])
                self.woken += 1
            else:  # its run closed while it waited: the slot goes to the next in line
                more = (await self._store.release(task_id)).granted
                parked.update(await self._parked(more))
                pending.extend(more)

    async def _parked(self, task_ids: list[str]) -> dict[str, ParkedStart]:
        if self._starter is None or not task_ids:
            return {}
        return await parked_starts(self._store.pool, task_ids)

    async def _wake(self, task_id: str, parked: ParkedStart | None) -> bool:
        if parked is None or self._starter is None:
            return await self._signal(task_id, SIGNAL_ADMITTED, None)
        try:
            request = TaskWorkflowInput.model_validate(parked.input)
        except ValidationError as exc:
            # Never started, and it cannot be: were this raised, the keeper's every round
            # would meet the ticket again and stop its worker (each worker's, in turn).
            self.unreadable += 1
            log.error(
                "a parked task's stored start is unreadable: it cannot start, and its slot"
                " goes to the next in line",
                extra={"task_id": task_id, "error": str(exc)},
            )
            return False
        return await self._starter.wake(
            request,
            request_hash=parked.request_hash,
            request_nonce=parked.request_nonce,
            signal=SIGNAL_ADMITTED,
        )

    async def _signal(self, task_id: str, name: str, arg: str | None) -> bool:
        handle = self._client.get_workflow_handle(workflow_id_for(task_id))
        try:
            if arg is None:
                await handle.signal(name)
            else:
                await handle.signal(name, arg)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:  # closed: nothing to tell
                return False
            raise
        return True


class AdmissionActivities:
    def __init__(self, store: AdmissionStore, waker: Waker) -> None:
        self._store = store
        self._waker = waker

    @activity.defn(name=ADMISSION_ACQUIRE)
    async def acquire(self, request: AdmissionRequest) -> AdmissionDecision:
        bind_log_context(task_id=request.task_id, workflow_id=activity.info().workflow_id)
        return await self.claim(request)

    async def claim(self, request: AdmissionRequest) -> AdmissionDecision:
        """`admission_acquire`'s work, also done by a task's opening (activities/opening.py)."""
        outcome = await self._store.acquire(request)
        await self._waker.tell(outcome)
        if outcome.decision is None:  # a claim always decides
            raise RuntimeError("admission claim without a decision")
        return outcome.decision

    @activity.defn(name=ADMISSION_RELEASE)
    async def release(self, request: AdmissionRelease) -> None:
        bind_log_context(task_id=request.task_id, workflow_id=activity.info().workflow_id)
        await self.give_back(request)

    async def give_back(self, request: AdmissionRelease) -> None:
        """`admission_release`'s work, also done by a task's closing (activities/opening.py)."""
        await self._waker.tell(await self._store.release(request.task_id))
