"""`claim_scheduled_task`: a schedule's run claims its task for the schedule's tenant.

The same claim `POST /tasks` makes before it starts a workflow (store/tenants.py), so a
scheduled task is owned from before its first event. True when the tenant owns the
task (claimed now or by an earlier attempt); False for a pruned task's id.
"""

from __future__ import annotations

import logging

from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.exceptions import ApplicationError

from schemas.schedules import CLAIM_SCHEDULED_TASK, ClaimScheduledTask
from store.tenants import TaskOwners

log = logging.getLogger(__name__)


class ScheduleActivities:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._owners = TaskOwners(pool)

    @activity.defn(name=CLAIM_SCHEDULED_TASK)
    async def claim(self, request: ClaimScheduledTask) -> bool:
        owner = await self._owners.claim(request.task_id, request.tenant, request.concurrency_key)
        if owner is None:
            log.warning(
                "a schedule's fire names a pruned task: not started",
                extra={"task_id": request.task_id, "tenant": request.tenant},
            )
            return False
        if owner != request.tenant:  # a UUID derived from the run's id: never expected
            raise ApplicationError(
                f"task id {request.task_id} belongs to another tenant", non_retryable=True
            )
        return True
