"""Bulk operations on Temporal: starting an operation's workflow (workflows/bulk.py), and
the control request it sends each task (the API's own path, temporal/tasks.py)."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Final

from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from schemas.bulk import BULK_WORKFLOW, BulkWorkflowInput
from schemas.size import cap_text
from schemas.workflow import ControlRequest
from temporal.parked_runs import ParkedRuns
from temporal.task_errors import ControlRefusedError, TaskGoneError


def bulk_workflow_id(bulk_id: str) -> str:
    return f"bulk-{bulk_id}"


async def start_bulk_operation(
    client: Client, request: BulkWorkflowInput, *, task_queue: str, rpc_timeout: timedelta
) -> None:
    """Start the operation's workflow, or leave the one under its id (a repeat of an
    idempotent request starts nothing)."""
    with contextlib.suppress(WorkflowAlreadyStartedError):  # closed under the same id
        await client.start_workflow(
            BULK_WORKFLOW,
            request,
            id=bulk_workflow_id(request.bulk_id),
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=f"bulk operation {request.bulk_id}",
            rpc_timeout=rpc_timeout,
        )


# What became of one task's control request, as a bulk operation counts it.
TAKEN: Final = "taken"  # the workflow applied it
REFUSED: Final = "refused"  # makes no sense now (reason: the workflow's)
GONE: Final = "gone"  # the run has ended
FAILED: Final = "failed"  # could not be asked: no worker in time, a workflow that cannot answer

_TEMPORAL_AWAY = frozenset(
    {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED}
)


async def control_for_bulk(
    tasks: ParkedRuns, task_id: str, request: ControlRequest, update_id: str
) -> tuple[str, str | None]:
    """Send one task the `control` update as `POST /tasks/{id}/<action>` does; (kind,
    reason); a task parked in the store is started to take it. Temporal being away
    raises (the caller's page is retried, not the task counted as failed)."""
    try:
        await tasks.control(task_id, request, update_id=update_id)
    except ControlRefusedError as exc:
        return REFUSED, exc.reason
    except TaskGoneError:
        return GONE, "has already ended"
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        return FAILED, f"no worker took the {request.action} in time"
    except WorkflowUpdateFailedError as exc:
        return FAILED, cap_text(f"cannot be controlled now: {exc.cause}", 500)
    except RPCError as exc:
        if exc.status in _TEMPORAL_AWAY:
            raise
        return FAILED, f"its workflow does not answer ({exc.status.name})"
    return TAKEN, None
