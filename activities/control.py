"""`request_cancellation`: a task's run asks Temporal to cancel itself.

Why: a run closes as Canceled in Temporal only when Temporal was asked to cancel
it. The API's cancel and the `cancel` signal reach the workflow as a signal;
once it has recorded `task.cancelled.v1`, it runs this local activity and waits,
so every way of cancelling a task ends with the same close status in the Web UI.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from schemas.workflow import REQUEST_CANCELLATION, RequestCancellationInput


class ControlActivities:
    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn(name=REQUEST_CANCELLATION)
    async def request_cancellation(self, request: RequestCancellationInput) -> None:
        info = activity.info()
        if info.workflow_id is None:  # only a workflow's run can ask for its own cancel
            raise ApplicationError(
                "request_cancellation runs only for a workflow", non_retryable=True
            )
        handle = self._client.get_workflow_handle(info.workflow_id, run_id=info.workflow_run_id)
        try:
            await handle.cancel()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:  # closed meanwhile: nothing to cancel
                raise
