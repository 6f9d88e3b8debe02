"""Pause, resume and cancel: the API's side of the `control` update.

The workflow decides (its validator refuses what makes no sense: 409) and has applied
the change before the API answers 202, so a second request right after the first sees
it. The signals of the same names stay for operators (`temporal workflow signal`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError

from api.auth import TenantDep
from api.deps import ServicesDep
from api.lookup import find_task, parse_task_id
from api.models import ControlResponse
from api.problems import (
    DEPENDENCY_RETRY_AFTER_SECONDS,
    TEMPORAL_UNAVAILABLE,
    ProblemError,
    temporal_problem,
)
from schemas.tasks import TaskStatus
from schemas.workflow import ControlRequest
from temporal.parked_runs import ParkedRuns
from temporal.task_errors import ControlRefusedError, TaskGoneError

router = APIRouter(tags=["tasks"])


async def _control(
    services: ServicesDep, task_id: str, tenant: str, request: ControlRequest
) -> None:
    view = await find_task(services, task_id, tenant)
    if view.status.terminal:
        raise ProblemError(
            409, f"task {task_id} is {view.status.value}", task_status=view.status.value
        )
    try:
        # A run whose workflow task keeps failing would never take the update: say so
        # at once instead of waiting out the deadline.
        description = await services.temporal.describe(task_id)
        runs = ParkedRuns(services.temporal, services.pool)
        # No run: parked in the store (started now, to take it), or gone (retention).
        if description is None and not await runs.start(task_id):
            raise TaskGoneError(task_id)
        if description is not None and description.failing is not None:
            raise ProblemError(
                409,
                f"task {task_id} cannot be controlled now: {description.failing}; it moves"
                " again once a fixed worker runs it, or end it with `temporal workflow terminate`",
                task_status=view.status.value,
            )
        await services.temporal.control(task_id, request)  # a parked task's run is started
    except ControlRefusedError as exc:
        status = (exc.status or view.status).value
        raise ProblemError(409, f"task {task_id} {exc.reason}", task_status=status) from None
    except TaskGoneError:
        raise ProblemError(409, f"task {task_id} has already ended") from None
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        raise ProblemError(
            503,
            f"task {task_id}: no worker took the {request.action} in time; try again",
            headers={"Retry-After": str(DEPENDENCY_RETRY_AFTER_SECONDS)},
            component="worker",
        ) from None
    except WorkflowUpdateFailedError as exc:  # e.g. a workflow that cannot run the handler
        raise ProblemError(
            409, f"task {task_id} cannot be controlled now: {exc.cause}"[:1000]
        ) from None
    except RPCError as exc:
        if exc.status in TEMPORAL_UNAVAILABLE:
            raise temporal_problem(exc) from None
        # The workflow cannot answer (e.g. its workflow task keeps failing): not now.
        raise ProblemError(
            409,
            f"task {task_id} cannot be controlled now: its workflow does not answer"
            f" ({exc.status.name}: {exc.message})"[:1000],
            task_status=view.status.value,
        ) from None


_CONTROL_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {"description": "The transition makes no sense now (e.g. the task has ended)."}
}


@router.post(
    "/tasks/{task_id}/pause",
    status_code=202,
    response_model=ControlResponse,
    responses=_CONTROL_RESPONSES,
)
async def pause_task(task_id: str, services: ServicesDep, tenant: TenantDep) -> ControlResponse:
    """Ask a running task to pause at its next step boundary (`task.paused.v1` follows).
    409 when it is already paused, has ended, or its workflow cannot act on it now."""
    task_id = parse_task_id(task_id)
    await _control(services, task_id, tenant, ControlRequest(action="pause"))
    return ControlResponse(task_id=task_id, status=TaskStatus.PAUSED)


@router.post(
    "/tasks/{task_id}/resume",
    status_code=202,
    response_model=ControlResponse,
    responses=_CONTROL_RESPONSES,
)
async def resume_task(task_id: str, services: ServicesDep, tenant: TenantDep) -> ControlResponse:
    """Resume a paused task, or withdraw a pause not yet reached (`task.resumed.v1`).
    409 when it is not paused or has ended."""
    task_id = parse_task_id(task_id)
    await _control(services, task_id, tenant, ControlRequest(action="resume"))
    return ControlResponse(task_id=task_id, status=TaskStatus.RUNNING)


@router.post(
    "/tasks/{task_id}/cancel",
    status_code=202,
    response_model=ControlResponse,
    responses=_CONTROL_RESPONSES,
)
async def cancel_task(task_id: str, services: ServicesDep, tenant: TenantDep) -> ControlResponse:
    """Cancel the task: the running step is cancelled, then `task.cancelled.v1` ends it.
    409 when it has already ended."""
    task_id = parse_task_id(task_id)
    await _control(services, task_id, tenant, ControlRequest(action="cancel"))
    return ControlResponse(task_id=task_id, status=TaskStatus.CANCELLED)
