"""Find a task: the store knows it once its first event is recorded; before
that only Temporal does, and the task is `pending`. A pruned task (retention) is
known to neither any more: its tombstone answers 404 before Temporal is asked,
since Temporal may still retain its closed workflow."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from api.models import TaskView
from api.problems import ProblemError
from api.services import Services
from schemas.tasks import TaskStatus
from store import TaskRecord
from store.tenants import TaskOwners
from temporal.tasks import TaskDescription


def parse_task_id(task_id: str) -> str:
    """Task ids are UUIDs; anything else cannot name a task."""
    try:
        return str(uuid.UUID(task_id))
    except ValueError:
        raise ProblemError(404, f"no task {task_id!r}") from None


async def describe_workflow(services: Services, task_id: str) -> TaskDescription | None:
    return await services.temporal.describe(task_id)


def view_from_record(record: TaskRecord) -> TaskView:
    return TaskView(
        task_id=record.task_id,
        type=record.task_type,
        status=TaskStatus(record.status),
        progress=record.progress,
        created_at=record.created_at,
        updated_at=record.updated_at,
        result=record.result,
        error=record.error,
        workflow_task_failing_since=record.workflow_task_failing_since,
    )


async def find_task(
    services: Services,
    task_id: str,
    tenant: str,
    *,
    description: TaskDescription | None = None,
) -> TaskView:
    """The task's view, or a 404 problem when neither the store nor Temporal knows it,
    or when it belongs to another tenant: for them it does not exist (no 403, which
    would confirm the id). Ownership is checked first, so a pending task (known only
    to Temporal) is checked as well: its owner row is written before it starts.
    A caller that has just described the run passes its `description`: one call less."""
    task_id = parse_task_id(task_id)
    if await TaskOwners(services.pool).owner_of(task_id) != tenant:
        raise ProblemError(404, f"no task {task_id}")
    record, pruned = await services.tasks.get_or_pruned(task_id)
    if record is not None:
        return view_from_record(record)
    if pruned:  # Temporal may still have its workflow: never ask it
        raise ProblemError(404, f"no task {task_id}")
    description = description or await describe_workflow(services, task_id)
    if description is None:
        raise ProblemError(404, f"no task {task_id}")
    started = description.start_time or datetime.now(UTC)
    return TaskView(
        task_id=task_id,
        type=description.task_type,
        status=TaskStatus.PENDING,
        progress=0.0,
        created_at=started,
        updated_at=started,
    )
