"""The reconciler's admission keeper: no leaked slot, no stuck key (docs/flow-control.md).

A run's own code gives its slot back at every ending it sees; these cases it cannot:

- an operator's terminate, a workflow timeout, a reset that leaves a run: the
  reconciler records their ending and calls `release_closed` (the slot goes, the
  next in line is admitted);
- a release lost some other way (the store was down then): every `check_after`
  seconds it checks a page of slot holders held longer than that against Temporal
  and frees those whose workflow is closed;
- a wake-up signal lost to a crash between commit and send: tickets stay
  `woken = false`, and are signalled again after `wake_after`;
- a key with a free slot and a line (any of the above half done): dispatched;
- a task still in line whose task ended (a parked run cancelled in Temporal before
  its claim): its place is given back.

Admitted parked tasks (store/admission_park.py) are woken by the `Waker` with
Signal-With-Start, the re-sent wake-ups included, so a parked task whose API or
worker died after parking or admitting it is started all the same.

It runs inside the reconciler's round, so under its advisory lock: one keeper at a
time across workers. Each question is bounded (`batch` rows).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.admission import Waker
from schemas.workflow import workflow_id_for
from store.admission import Admission, AdmissionStore
from store.admission_sweep import ended_waiters, slot_holders, stuck_keys, unwoken
from telemetry.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass
class KeeperStats:
    released_closed: int = 0
    rewoken: int = 0
    unstuck: int = 0


def register_admission_metrics(metrics: Metrics, keeper: AdmissionKeeper, waker: Waker) -> None:
    """What an operator watches of admission (docs/flow-control.md#operating-it); the
    queued tasks themselves are `taskplane_tasks{status="queued"}`."""
    metrics.counter(
        "taskplane_admission_woken",
        "Queued tasks this worker told they hold a slot now",
        lambda: waker.woken,
    )
    metrics.counter(
        "taskplane_admission_cancelled",
        "Tasks this worker cancelled for a cancel_in_progress newcomer",
        lambda: waker.cancelled,
    )
    metrics.counter(
        "taskplane_admission_unreadable_parked",
        "Parked tasks never started: their stored start did not validate (logged)",
        lambda: waker.unreadable,
    )
    metrics.counter(
        "taskplane_admission_released_closed",
        "Slots freed by the reconciler: their run closed without giving them back",
        lambda: keeper.stats.released_closed,
    )
    metrics.counter(
        "taskplane_admission_rewoken",
        "Wake-up signals sent again (the first was lost)",
        lambda: keeper.stats.rewoken,
    )
    metrics.counter(
        "taskplane_admission_unstuck",
        "Queued tasks admitted by the reconciler into a key with a free slot",
        lambda: keeper.stats.unstuck,
    )


class AdmissionKeeper:
    def __init__(
        self,
        client: Client,
        store: AdmissionStore,
        waker: Waker,
        *,
        wake_after: float,
        check_after: float,
        batch: int = 100,
    ) -> None:
        self._client = client
        self._store = store
        self._waker = waker
        self._wake_after = wake_after
        self._check_after = check_after
        self._batch = batch
        self._cursor = ""
        self._next_check = 0.0
        self.stats = KeeperStats()
        # Set by the reconciler: records a closed holder's ending before its slot goes, so
        # the store never shows the run open once its slot is someone else's.
        self.record_ending: Callable[[str, WorkflowExecutionDescription], Awaitable[int]] | None
        self.record_ending = None

    async def release_closed(self, task_id: str) -> None:
        """The task's current run closed without its own code (the reconciler saw it)."""
        outcome = await self._store.release(task_id)
        self.stats.released_closed += 1
        log.info("slot of a closed run released", extra={"task_id": task_id})
        await self._waker.tell(outcome)

    async def round(self) -> None:
        pool = self._store.pool
        for task_id in await ended_waiters(pool, self._batch):
            await self.release_closed(task_id)
        for task_type, key in await stuck_keys(pool, self._batch):
            granted = await self._store.dispatch(task_type, key)
            self.stats.unstuck += len(granted)
            await self._waker.tell(Admission(granted=granted))
        lost = await unwoken(pool, self._wake_after, self._batch)
        self.stats.rewoken += len(lost)
        await self._waker.tell(Admission(granted=lost))
        now = asyncio.get_running_loop().time()
        if now < self._next_check:
            return
        # One page of holders per `check_after`: a describe each, so bounded calls.
        self._next_check = now + self._check_after
        holders = await slot_holders(
            pool, older_than=self._check_after, after=self._cursor, limit=self._batch
        )
        self._cursor = holders[-1][0] if len(holders) == self._batch else ""
        for task_id, _ in holders:
            described = await self._describe(task_id)
            if described is not None and described.status is WorkflowExecutionStatus.RUNNING:
                continue
            record = self.record_ending
            if described is not None and record is not None and await record(task_id, described):
                continue  # its ending recorded, and its slot released with it
            await self.release_closed(task_id)

    async def _describe(self, task_id: str) -> WorkflowExecutionDescription | None:
        """The run, or None: gone from Temporal altogether."""
        handle = self._client.get_workflow_handle(workflow_id_for(task_id))
        try:
            return await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
