"""`POST /tasks`: refuse an input that alone would need more events than a task may record.

The budget itself is enforced where events are recorded (store/budget.py): a task that
exceeds it fails. This check refuses up front what is bound to fail, so no single
request can ask for millions of events; input models opt in (`schemas.tasks.PlannedEvents`).
"""

from __future__ import annotations

from pydantic import BaseModel

from api.problems import ProblemError
from schemas.tasks import PlannedEvents

SETTING = "TASKPLANE_MAX_EVENTS_PER_TASK"


def check_event_budget(task_type: str, validated: BaseModel, budget: int) -> None:
    """Raise 422 when `validated` plans more events than `budget`."""
    if not isinstance(validated, PlannedEvents):
        return
    planned = validated.planned_events()
    if planned > budget:
        raise ProblemError(
            422,
            f"this {task_type} input would record up to {planned} events, more than the"
            f" {budget} events a task may record ({SETTING})",
            title="Event budget exceeded",
            limit=budget,
            limit_name="max_events_per_task",
            planned_events=planned,
        )
