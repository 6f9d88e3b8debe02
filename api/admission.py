"""What `POST /tasks` decides about a task's concurrency (docs/flow-control.md): the
type's limit (its registration, else `TASKPLANE_CONCURRENCY_LIMIT`), the key (default:
the tenant) and the priority, carried in the workflow's input so the run, and every
replay of it, knows whether it takes a slot before its first step."""

from __future__ import annotations

from typing import Any

from api.models import CreateTaskRequest
from schemas.admission import concurrency_policy
from schemas.workflow import TaskWorkflowInput
from settings import Settings


def workflow_input(
    body: CreateTaskRequest,
    task_id: str,
    task_input: dict[str, Any],
    tenant: str,
    settings: Settings,
) -> TaskWorkflowInput:
    policy = concurrency_policy(body.type, settings.concurrency_limit)
    return TaskWorkflowInput(
        task_id=task_id,
        task_type=body.type,
        input=task_input,
        owner=tenant,
        concurrency_key=(body.concurrency_key or tenant) if policy else None,
        concurrency_limit=policy.limit if policy else None,
        concurrency_strategy=policy.strategy if policy else "queue",
        priority=body.priority,
    )
