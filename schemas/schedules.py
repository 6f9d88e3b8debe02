"""The schedule boundary: what the API, the worker and `ScheduledTaskWorkflow` agree on.

A Temporal Schedule starts `ScheduledTaskWorkflow` (workflows/scheduled.py) under a
workflow id Temporal makes (the action's id plus the fire time). That run derives
the task's id from its own workflow and first run ids (`scheduled_task_id`, a UUID
like every task id), claims the task for the schedule's tenant, and starts the ordinary
`TaskWorkflow` under `task-<id>` as its child: every run of a schedule is a task
like any other (events, streams, control, `GET /tasks`). Pure: no I/O, imported
through the sandbox. Add, never rename.
"""

from __future__ import annotations

import uuid
from typing import Any, Final, Literal

from pydantic import BaseModel, Field

SCHEDULED_TASK_WORKFLOW: Final = "ScheduledTaskWorkflow"
CLAIM_SCHEDULED_TASK: Final = "claim_scheduled_task"
# Memo key on a scheduled task's workflow: the schedule (public id) that started it.
MEMO_SCHEDULE_ID: Final = "schedule_id"

# Fixed forever: stored task ids and schedule ids were derived with it.
_NAMESPACE: Final = uuid.UUID("5b0c9f6e-3a57-4c57-9a51-5d1a4f0e2b24")
_SCHEDULE_PREFIX: Final = "taskplane-schedule-"
_ACTION_PREFIX: Final = "scheduled-"


def temporal_schedule_id(tenant: str, schedule_id: str) -> str:
    """The Temporal Schedule of `tenant`'s schedule `schedule_id`: two tenants' schedules
    of the same id are two schedules, and one tenant cannot name another's."""
    name = uuid.uuid5(_NAMESPACE, "\x00".join((tenant, schedule_id)))
    return f"{_SCHEDULE_PREFIX}{name}"


def action_workflow_id(temporal_id: str) -> str:
    """The workflow id the schedule's action carries (Temporal appends the fire time)."""
    return _ACTION_PREFIX + temporal_id.removeprefix(_SCHEDULE_PREFIX)


def scheduled_task_id(workflow_id: str, first_run_id: str) -> str:
    """The task a schedule's run starts: a UUID derived from the run's workflow id and
    its first run id, so a replayed (or reset) run claims and starts the same task, and
    two fires under one workflow id (Temporal names them by the second they fire in)
    start two tasks."""
    return str(uuid.uuid5(_NAMESPACE, f"{workflow_id}/{first_run_id}"))


class ScheduledTaskInput(BaseModel):
    """The schedule action's argument: the task every run starts."""

    tenant: str
    schedule_id: str
    task_type: str
    input: dict[str, Any]
    # Flow control (issue 24), decided by the API when the schedule is created or
    # changed, as `POST /tasks` decides it at creation; each fire's task carries it.
    # Optional with defaults: actions stored before them decode (no limit, priority 3).
    concurrency_key: str | None = None
    concurrency_limit: int | None = Field(default=None, ge=1)
    concurrency_strategy: Literal["queue", "cancel_newest", "cancel_in_progress"] = "queue"
    priority: int = Field(default=3, ge=1, le=5)
    fairness_weight: float = Field(default=1.0, gt=0)


class ClaimScheduledTask(BaseModel):
    task_id: str
    tenant: str
    concurrency_key: str | None = None  # None: the tenant (schedules from before keys)
