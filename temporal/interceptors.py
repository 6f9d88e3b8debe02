"""Worker interceptors of our own (the tracing one is the SDK's, added with the client)."""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from schemas.workflow import task_id_from_workflow_id
from telemetry.logs import bound_log_context


class LogContextInterceptor(Interceptor):
    """Every activity, built-in or a plugin's, logs with its task's ids bound.

    `workflow_id`, `task_id`, `activity_type` and `attempt` go into the log context
    for the activity's run, so its lines, and the recorder's and the store's below
    it, carry them without anyone passing them by hand.
    """

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityLogContext(next)


class _ActivityLogContext(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        fields: dict[str, Any] = {
            "workflow_id": info.workflow_id,
            "activity_type": info.activity_type,
            "attempt": info.attempt,
        }
        task_id = task_id_from_workflow_id(info.workflow_id or "")
        if task_id is not None:
            fields["task_id"] = task_id
        with bound_log_context(**fields):
            return await self.next.execute_activity(input)
