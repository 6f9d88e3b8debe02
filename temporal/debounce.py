"""The API's side of debounce: each creation is the `debounce` update, with start.

Update-with-start on the window's workflow id (`USE_EXISTING`) joins the open
window or opens one; a window that is already starting its task refuses the
update (`DebounceClosed`), and the creation is sent again until the next window
opens (the closing one completes within a workflow task or two).
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError

from schemas.debounce import (
    DEBOUNCE_CLOSED,
    DEBOUNCE_WORKFLOW,
    UPDATE_DEBOUNCE,
    DebounceAnswer,
    DebounceCreation,
    DebounceStart,
    debounce_workflow_id,
)

FIRST_RETRY_SECONDS = 0.02
MAX_RETRY_SECONDS = 0.5


def _window_closed(exc: WorkflowUpdateFailedError) -> bool:
    cause = exc.cause
    return isinstance(cause, ApplicationError) and cause.type == DEBOUNCE_CLOSED


class DebounceClient:
    def __init__(self, client: Client, *, task_queue: str, rpc_timeout: timedelta) -> None:
        self.client = client
        self._task_queue = task_queue
        self._rpc_timeout = rpc_timeout

    async def add(self, start: DebounceStart, creation: DebounceCreation) -> DebounceAnswer:
        """The window's answer: its task id, and how many creations it holds now."""
        workflow_id = debounce_workflow_id(start.tenant, start.task_type, start.key)
        deadline = time.monotonic() + self._rpc_timeout.total_seconds()
        wait = FIRST_RETRY_SECONDS
        while True:
            operation: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
                DEBOUNCE_WORKFLOW,
                start,
                id=workflow_id,
                task_queue=self._task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                static_summary=f"debounce {start.task_type} of {start.tenant}",
            )
            try:
                answer: DebounceAnswer = await self.client.execute_update_with_start_workflow(
                    UPDATE_DEBOUNCE,
                    creation,
                    start_workflow_operation=operation,
                    result_type=DebounceAnswer,
                    rpc_timeout=self._rpc_timeout,
                )
            except WorkflowUpdateFailedError as exc:
                if not _window_closed(exc) or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(wait)
                wait = min(wait * 2, MAX_RETRY_SECONDS)
                continue
            return answer
