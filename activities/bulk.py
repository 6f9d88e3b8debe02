"""The bulk workflow's activities: select the matching tasks, act on pages, finish.

Each task is acted on the way `POST /tasks/{id}/pause|resume|cancel` does it: the task's
`control` update (temporal/bulk.py, temporal/tasks.py), so the task's own workflow records its
`task.paused.v1` / `task.resumed.v1` / `task.cancelled.v1` and the store, every stream
and every webhook get it as from any other control. The update id names the operation,
so a page retried after a worker crash repeats the same update, which Temporal answers
from the first: no task is acted on twice. A cancel carries `bulk operation <id>` as its
reason, so a retry that finds the task already cancelled knows whether it was this
operation (done) or something else (skipped).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.exceptions import ApplicationError

from schemas.bulk import (
    BULK_ACT,
    BULK_FINISH,
    BULK_SELECT,
    OUTCOME_DONE,
    OUTCOME_FAILED,
    OUTCOME_SKIPPED,
    BulkCounts,
    BulkOperation,
    BulkPageResult,
    BulkStatus,
    BulkStepInput,
)
from schemas.tasks import TaskStatus
from schemas.workflow import ControlRequest
from settings.bulk import BulkSettings
from store.bulk import BulkStore
from store.tasks import TaskReader
from telemetry.logs import bind_log_context

log = logging.getLogger(__name__)

# Sends one task the `control` update under an update id; answers (kind, reason), kind
# one of taken, refused, gone, failed (temporal/bulk.py `control_for_bulk`, wired by the
# worker: activities do not import the Temporal client layer).
Control = Callable[[str, ControlRequest, str], Awaitable[tuple[str, str | None]]]
HEARTBEAT_EVERY_SECONDS = 1.0
# A task whose workflow did not take the update in time (e.g. its worker was just
# SIGKILLed and its workflow task waits for another) is asked again before it counts as
# failed.
CONTROL_ATTEMPTS = 3


@dataclass
class BulkStats:
    """What the worker's `/metrics` shows of bulk operations (worker/bulk_metrics.py)."""

    started: int = 0
    completed: int = 0
    # (action, outcome) → tasks
    tasks: Tally[tuple[str, str]] = field(default_factory=Tally)


def cancel_reason(bulk_id: str) -> str:
    return f"bulk operation {bulk_id}"


class Pacer:
    """At most `rate` starts a second, spread evenly (no burst)."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate
        self._next = time.monotonic()

    async def wait(self) -> None:
        now = time.monotonic()
        start = max(now, self._next)
        self._next = start + self._interval
        if start > now:
            await asyncio.sleep(start - now)


class BulkActivities:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        control: Control,
        settings: BulkSettings | None = None,
        stats: BulkStats | None = None,
    ) -> None:
        self._store = BulkStore(pool)
        self._reader = TaskReader(pool)
        self._control = control
        self._settings = settings or BulkSettings()
        self.stats = stats or BulkStats()

    async def _operation(self, bulk_id: str) -> BulkOperation:
        stored = await self._store.get(bulk_id)
        if stored is None:
            raise ApplicationError(f"no bulk operation {bulk_id}", non_retryable=True)
        operation = stored.operation
        bind_log_context(bulk_id=bulk_id, action=operation.action)
        return operation

    @activity.defn(name=BULK_SELECT)
    async def select(self, step: BulkStepInput) -> None:
        """Write the tenant's matching tasks as the operation's tasks, page by page; a
        retry resumes after the last page its heartbeat reported."""
        operation = await self._operation(step.bulk_id)
        if operation.status in (BulkStatus.RUNNING, BulkStatus.COMPLETED):
            return
        if operation.status is BulkStatus.PENDING:
            await self._store.set_status(operation.id, BulkStatus.SELECTING)
            self.stats.started += 1
            log.info(
                "bulk operation started", extra={"filter": operation.filter.model_dump(mode="json")}
            )
        after = _resumed_cursor(activity.info().heartbeat_details)
        size = self._settings.select_page_size
        matched = 0
        while True:
            page = await self._store.select_page(operation, after, size)
            matched += page.count
            if page.last is None:
                break
            after = page.last
            activity.heartbeat(after[0].isoformat(), after[1])
            if page.count < size:
                break
        await self._store.set_status(operation.id, BulkStatus.RUNNING)
        log.info("bulk operation selected its tasks", extra={"selected": matched})

    @activity.defn(name=BULK_ACT)
    async def act(self, step: BulkStepInput) -> BulkPageResult:
        """Act on the next page of tasks without an outcome, at most `rate_per_second`
        and `concurrency` at once; each outcome is written as it is known."""
        operation = await self._operation(step.bulk_id)
        task_ids = await self._store.pending(operation.id, self._settings.act_page_size)
        pacer = Pacer(self._settings.rate_per_second)
        gate = asyncio.Semaphore(self._settings.concurrency)

        async def one(task_id: str) -> None:
            async with gate:
                await pacer.wait()
                outcome, reason = await self._act_on(operation, task_id)
                if await self._store.record(operation.id, task_id, outcome, reason):
                    self.stats.tasks[(operation.action, outcome)] += 1
                    log.info(
                        "bulk operation acted on a task",
                        extra={"task_id": task_id, "outcome": outcome, "reason": reason},
                    )

        beating = asyncio.create_task(_heartbeat())
        try:
            async with asyncio.TaskGroup() as group:
                for task_id in task_ids:
                    group.create_task(one(task_id))
        finally:
            beating.cancel()
        remaining = len(await self._store.pending(operation.id, 1))
        return BulkPageResult(acted=len(task_ids), remaining=remaining)

    async def _act_on(self, operation: BulkOperation, task_id: str) -> tuple[str, str | None]:
        record = await self._reader.get(task_id)
        if record is None:
            return OUTCOME_SKIPPED, "is no longer in the store"
        status = TaskStatus(record.status)
        if status.terminal:
            return await self._already(operation, task_id, f"is {status.value}")
        reason = cancel_reason(operation.id) if operation.action == "cancel" else None
        request = ControlRequest(action=operation.action, reason=reason)
        for _ in range(CONTROL_ATTEMPTS):
            # The same update id each time: a repeat is the same update, applied once.
            kind, why = await self._control(task_id, request, f"bulk-{operation.id}")
            if kind != "failed":
                break
        if kind == "taken":
            return OUTCOME_DONE, None
        if kind in ("refused", "gone"):
            return await self._already(operation, task_id, why or kind)
        return OUTCOME_FAILED, why

    async def _already(
        self, operation: BulkOperation, task_id: str, refusal: str
    ) -> tuple[str, str | None]:
        """A task the action makes no sense for is skipped, unless it is in that state
        because of this operation (a retried page after the cancel went through)."""
        if operation.action == "cancel":
            record = await self._reader.get(task_id)
            if (
                record is not None
                and record.status == TaskStatus.CANCELLED.value
                and record.error == cancel_reason(operation.id)
            ):
                return OUTCOME_DONE, None
        return OUTCOME_SKIPPED, refusal

    @activity.defn(name=BULK_FINISH)
    async def finish(self, step: BulkStepInput) -> BulkCounts:
        operation = await self._operation(step.bulk_id)
        if operation.status is not BulkStatus.COMPLETED:
            await self._store.set_status(operation.id, BulkStatus.COMPLETED)
            self.stats.completed += 1
        counts = await self._store.counts(operation.id)
        log.info(
            "bulk operation completed",
            extra={
                "matched": counts.matched,
                "done": counts.done,
                "skipped": counts.skipped,
                "failed": counts.failed,
            },
        )
        return counts


async def _heartbeat() -> None:
    """Tell Temporal the page is alive while updates are under way (each may take up to
    the RPC timeout); a SIGKILLed worker stops this, and the page is retried elsewhere."""
    while True:
        activity.heartbeat()
        await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)


def _resumed_cursor(details: object) -> tuple[datetime, str] | None:
    if isinstance(details, list | tuple) and len(details) == 2:
        when, task_id = details
        if isinstance(when, str) and isinstance(task_id, str):
            return datetime.fromisoformat(when), task_id
    return None
