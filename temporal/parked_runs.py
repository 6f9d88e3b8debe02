"""The run of a task parked in the store (docs/flow-control.md#parked-tasks).

With `TASKPLANE_ADMISSION_PARK_IN=store` a parked task has no workflow until it is
admitted: its ticket keeps what starting it takes (store/admission_park.py). A
caller that must reach the run before then (a cancel, a pause, a bulk operation)
starts it first, as a parked task's update during its start delay did: the run
records `task.created.v1`, claims (still in line: `task.queued.v1`) and takes the
update. Every client-visible event is still the workflow's.
"""

from __future__ import annotations

import logging

from psycopg_pool import AsyncConnectionPool

from schemas.workflow import ControlRequest, TaskStatusView, TaskWorkflowInput
from store.admission_park import parked_starts
from temporal.task_errors import TaskGoneError
from temporal.tasks import TaskClient

log = logging.getLogger(__name__)


class ParkedRuns:
    """`TaskClient.control` for tasks that may not have a run yet."""

    def __init__(self, tasks: TaskClient, pool: AsyncConnectionPool) -> None:
        self._tasks = tasks
        self._pool = pool

    async def start(self, task_id: str) -> bool:
        """Start the run of a task still parked in the store (no delay: it claims and
        waits in line as any queued run). False: the task has no parked start (its run
        is gone, or it never parked). A run already there is left alone."""
        parked = (await parked_starts(self._pool, [task_id])).get(task_id)
        if parked is None:
            return False
        await self._tasks.start(
            TaskWorkflowInput.model_validate(parked.input),
            request_hash=parked.request_hash,
            request_nonce=parked.request_nonce,
        )
        log.info("parked task's run started to take a request", extra={"task_id": task_id})
        return True

    async def control(
        self, task_id: str, request: ControlRequest, *, update_id: str | None = None
    ) -> TaskStatusView:
        """As `TaskClient.control`; a task with no run yet but a parked start is started,
        then asked (the same `update_id`, so a repeat is still one update)."""
        try:
            return await self._tasks.control(task_id, request, update_id=update_id)
        except TaskGoneError:
            if not await self.start(task_id):
                raise
        return await self._tasks.control(task_id, request, update_id=update_id)
