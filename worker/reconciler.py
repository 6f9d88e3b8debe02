"""One truth: a run that closed without recording its ending gets one, from here.

An operator's terminate, a workflow timeout, or a run that failed outside the
task's code closes a TaskWorkflow run with no Taskplane code running to say so.
The reconciler finds such runs and records their terminal event through the
ordinary recorder, with an id derived from the run, so two reconcilers (or one
that retries) record it once, and the store refuses it anyway once the chapter
has its terminal event.

Two sources, both bounded, so the cost follows what closes, not how many tasks
exist:

- Temporal's visibility, every `interval`: TaskWorkflow runs closed since the
  last look as Terminated, TimedOut, Failed or Canceled (one list call; the
  look-back overlaps, the checks below make a second sight harmless).
- The store, every `sweep`: a page of tasks it thinks open and untouched for
  `stale` seconds, each described in Temporal. This heals what visibility
  cannot show any more (a worker fleet down for longer than the look-back),
  and finds runs whose workflow task keeps failing (a bad deploy, a payload
  the code cannot take): the task is flagged (`workflow_task_failing_since` in
  its GET), logged and counted, until its next event clears the flag.

Only the workflow's current run counts: a reset terminates the run it leaves,
and that run's ending belongs to no chapter. One reconciler works at a time
across workers (a Postgres advisory lock); the others skip the round.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.service import RPCError

from activities.recorder import EventRecorder
from schemas import cap_optional_text
from schemas.ids import closed_event_id
from schemas.workflow import TASK_WORKFLOW, task_id_from_workflow_id, workflow_id_for
from settings import Settings
from store.chapters import (
    RECONCILE_LOCK_KEY,
    chapters_of,
    mark_workflow_task_failing,
    stale_open_tasks,
)
from store.events import ChapterClosedError
from store.locks import try_exclusive
from telemetry.metrics import CountError, Metrics, ignore_error
from temporal.closures import CLOSE_STATUS_NAMES, run_closure
from temporal.health import FAILING_ATTEMPTS
from worker.admission_keeper import AdmissionKeeper
from worker.run_endings import (
    ENDINGS,
    VISIBILITY_NAMES,
    ClosedRun,
    ending_event,
    needs_ending,
)

log = logging.getLogger(__name__)

# Visibility is eventually consistent: each look starts this much before the last one.
LOOK_OVERLAP = timedelta(seconds=30)


@dataclass
class ReconcilerStats:
    rounds: int = 0
    skipped_rounds: int = 0
    failed_rounds: int = 0
    workflow_tasks_failing: int = 0
    # The last tasks whose ending was recorded here, newest last (for logs and tests).
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=100))
    reconciled: dict[str, int] = field(default_factory=dict)


def register_reconciler_metrics(metrics: Metrics, stats: ReconcilerStats) -> None:
    """Export a reconciler's counts in its runtime's metrics."""
    metrics.counter(
        "taskplane_workflow_tasks_failing_found",
        "Open tasks found with a workflow task that keeps failing (flagged on the task)",
        lambda: stats.workflow_tasks_failing,
    )
    metrics.counters(
        "taskplane_reconciled",
        "Runs whose ending the reconciler recorded, by how they closed in Temporal",
        lambda: [(float(n), {"reason": reason}) for reason, n in sorted(stats.reconciled.items())],
    )


class Reconciler:
    def __init__(
        self,
        client: Client,
        pool: AsyncConnectionPool,
        recorder: EventRecorder,
        *,
        interval: float = 2.0,
        lookback: float = 3600.0,
        sweep_every: float = 60.0,
        stale_after: float = 300.0,
        batch_size: int = 100,
        count_error: CountError = ignore_error,
        admission: AdmissionKeeper | None = None,
    ) -> None:
        self._client = client
        self._admission = admission
        if admission is not None:
            admission.record_ending = self._record_described
        self._count_error = count_error
        self._pool = pool
        self._recorder = recorder
        self._interval = interval
        self._sweep_every = sweep_every
        self._stale_after = stale_after
        self._batch_size = batch_size
        self._since = datetime.now(UTC) - timedelta(seconds=lookback)
        self._next_sweep = 0.0
        self._sweep_after = ""  # the sweep's cursor: task ids in order, then round again
        self.stats = ReconcilerStats()

    async def run(self) -> None:
        """Reconcile every `interval` until cancelled; a failed round is logged and retried."""
        while True:
            try:
                await self.round()
            except (psycopg.Error, RPCError, OSError, TimeoutError) as exc:
                self.stats.failed_rounds += 1
                self._count_error("reconciler", type(exc).__name__)
                log.warning("reconcile round failed", extra={"error": str(exc)})
            await asyncio.sleep(self._interval)

    async def round(self) -> int:
        """One look at what closed (and, when due, one sweep page); returns runs healed."""
        async with try_exclusive(self._pool, RECONCILE_LOCK_KEY) as held:
            if not held:
                self.stats.skipped_rounds += 1
                return 0
            return await self._round()

    async def _round(self) -> int:
        self.stats.rounds += 1
        started = datetime.now(UTC)
        candidates = await self._recently_closed()
        self._since = started - LOOK_OVERLAP
        healed = await self._heal(candidates)
        if self._admission is not None:  # slots of closed runs, lost wake-ups, stuck keys
            await self._admission.round()
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_sweep:
            self._next_sweep = loop.time() + self._sweep_every
            healed += await self._sweep()
        return healed

    async def _recently_closed(self) -> list[ClosedRun]:
        statuses = " OR ".join(
            f"ExecutionStatus = '{VISIBILITY_NAMES[status]}'" for status in ENDINGS
        )
        since = self._since.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        query = f"WorkflowType = '{TASK_WORKFLOW}' AND CloseTime >= '{since}' AND ({statuses})"
        found: list[ClosedRun] = []
        async for execution in self._client.list_workflows(query, page_size=self._batch_size):
            task_id = task_id_from_workflow_id(execution.id)
            if execution.status in ENDINGS and task_id is not None:
                found.append(ClosedRun(task_id, execution.run_id, execution.status))
        return found

    async def _heal(self, candidates: list[ClosedRun]) -> int:
        chapters = await chapters_of(self._pool, sorted({c.task_id for c in candidates}))
        healed = 0
        for run in candidates:
            if not needs_ending(chapters.get(run.task_id), run.run_id):
                continue
            if not await self._is_current_run(run):
                continue  # a reset left this run behind: its ending belongs to no chapter
            healed += await self._record_ending(run)
        return healed

    async def _sweep(self) -> int:
        page = await stale_open_tasks(
            self._pool,
            stale_seconds=self._stale_after,
            limit=self._batch_size,
            after=self._sweep_after,
        )
        self._sweep_after = page[-1].task_id if len(page) == self._batch_size else ""
        healed = 0
        for chapter in page:
            try:
                described = await self._client.get_workflow_handle(
                    workflow_id_for(chapter.task_id)
                ).describe()
            except RPCError as exc:
                log.debug(
                    "sweep: no workflow", extra={"task_id": chapter.task_id, "error": str(exc)}
                )
                continue
            if described.status in ENDINGS:
                run = ClosedRun(chapter.task_id, described.run_id, described.status)
                healed += await self._record_ending(run)
            elif described.raw_description.pending_workflow_task.attempt >= FAILING_ATTEMPTS:
                await self._workflow_task_failing(chapter.task_id, described.raw_description)
        return healed

    async def _workflow_task_failing(self, task_id: str, raw: Any) -> None:
        """A run whose workflow task fails again and again cannot move: say so, once."""
        if not await mark_workflow_task_failing(self._pool, task_id):
            return
        self.stats.workflow_tasks_failing += 1
        log.error(
            "the task's workflow task keeps failing: the task cannot move",
            extra={
                "task_id": task_id,
                "attempt": raw.pending_workflow_task.attempt,
                "run_id": raw.workflow_execution_info.execution.run_id,
            },
        )

    async def _record_described(self, task_id: str, described: WorkflowExecutionDescription) -> int:
        """The keeper found a slot holder's run closed: its ending first, if it has none."""
        if described.status not in ENDINGS:
            return 0
        chapters = await chapters_of(self._pool, [task_id])
        if not needs_ending(chapters.get(task_id), described.run_id):
            return 0
        return await self._record_ending(ClosedRun(task_id, described.run_id, described.status))

    async def _is_current_run(self, run: ClosedRun) -> bool:
        described = await self._client.get_workflow_handle(workflow_id_for(run.task_id)).describe()
        return described.run_id == run.run_id

    async def _record_ending(self, run: ClosedRun) -> int:
        closure = await run_closure(self._client, run.task_id, run.run_id)
        close_status = CLOSE_STATUS_NAMES[run.status]
        event_type, data = ending_event(run, close_status, closure.reason, closure.identity)
        if run.status is WorkflowExecutionStatus.FAILED:
            data["error"] = cap_optional_text(closure.failure) or "the workflow run failed"
        try:
            result = await self._recorder.record(
                event_id=closed_event_id(run.task_id, run.run_id),
                task_id=run.task_id,
                event_type=event_type,
                data=data,
                run_id=run.run_id,
            )
        except ChapterClosedError:
            return 0  # the run recorded its own ending meanwhile
        if self._admission is not None:  # no code of the run will give its slot back
            await self._admission.release_closed(run.task_id)
        if result.duplicate:
            return 0
        reason = close_status.lower()
        self.stats.reconciled[reason] = self.stats.reconciled.get(reason, 0) + 1
        self.stats.recent.append(run.task_id)
        log.warning(
            "recorded the ending of a run that closed without one",
            extra={
                "task_id": run.task_id,
                "run_id": run.run_id,
                "event_type": event_type,
                "sequence": result.sequence,
                "close_status": close_status,
            },
        )
        return 1


def build_reconciler(
    settings: Settings,
    client: Client,
    pool: AsyncConnectionPool,
    recorder: EventRecorder,
    count_error: CountError = ignore_error,
    admission: AdmissionKeeper | None = None,
) -> Reconciler:
    return Reconciler(
        client,
        pool,
        recorder,
        interval=settings.reconcile_interval_seconds,
        lookback=settings.reconcile_lookback_seconds,
        sweep_every=settings.reconcile_sweep_seconds,
        stale_after=settings.reconcile_stale_seconds,
        batch_size=settings.reconcile_batch_size,
        count_error=count_error,
        admission=admission,
    )
