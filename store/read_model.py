"""How each event moves the task read model (`tasks` row).

Kept apart from the SQL so the rules are plain data a unit test can check.
Progress of a task with steps is `(steps completed + fraction of the reporting
step) / total steps`, never going backwards; counting completed steps (rather
than reading the step's index) keeps it right when steps run in parallel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas import EventEnvelope, upcast
from schemas.tasks import TaskStatus


@dataclass(frozen=True, slots=True)
class TaskUpdate:
    """Columns an event sets; None leaves a column as it is."""

    task_type: str | None = None
    status: TaskStatus | None = None
    progress: float | None = None
    input: dict[str, Any] | None = None
    owner: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    # Step events: how far the reporting step is (0..1) and of how many steps.
    step_fraction: float | None = None
    total_steps: int | None = None
    completes_step: bool = False


def _step(data: dict[str, Any], fraction: float, *, completes: bool = False) -> TaskUpdate:
    total = data.get("total_steps")
    if not isinstance(total, int) or total < 1:
        return TaskUpdate()
    return TaskUpdate(step_fraction=fraction, total_steps=total, completes_step=completes)


def update_for(envelope: EventEnvelope) -> TaskUpdate:
    # The rules know only the latest version of each type; older stored ones are upcast.
    envelope = upcast(envelope)
    data = envelope.data
    match envelope.type:
        case "task.created.v1":
            return TaskUpdate(
                task_type=data.get("task_type"),
                status=TaskStatus.RUNNING,
                progress=0.0,
                input=data.get("input"),
                owner=data.get("owner"),
            )
        case "task.step.started.v1":
            return _step(data, 0.0)
        case "task.step.progress.v1":
            return _step(data, min(1.0, max(0.0, float(data.get("percent", 0)) / 100)))
        case "task.step.completed.v1":
            return _step(data, 1.0, completes=True)
        case "task.progress.v1":  # workflow code's own figure for the whole task
            return TaskUpdate(progress=float(data.get("percent", 0)))
        case "task.queued.v1":
            return TaskUpdate(status=TaskStatus.QUEUED)
        # A start deferred by the rate limit (schemas/deferral.py): recorded before
        # `task.created.v1`; `queued` (accepted, waiting its turn) until it starts. The
        # store applies its status to a new row only (store/events.py).
        case "task.deferred.v1":
            return TaskUpdate(task_type=data.get("task_type"), status=TaskStatus.QUEUED)
        case "task.admitted.v1":
            return TaskUpdate(status=TaskStatus.RUNNING)
        case "task.paused.v1":
            return TaskUpdate(status=TaskStatus.PAUSED)
        case "task.resumed.v1" | "task.input.received.v1":
            return TaskUpdate(status=TaskStatus.RUNNING)
        case "task.input.requested.v1":
            return TaskUpdate(status=TaskStatus.WAITING)
        case "task.completed.v1":
            return TaskUpdate(
                status=TaskStatus.COMPLETED, progress=100.0, result=data.get("result")
            )
        case "task.failed.v1":
            return TaskUpdate(status=TaskStatus.FAILED, error=data.get("error"))
        case "task.cancelled.v1":
            return TaskUpdate(status=TaskStatus.CANCELLED, error=data.get("reason"))
        case "task.terminated.v2":
            reason = data.get("reason") or f"closed by Temporal as {data.get('close_status')}"
            return TaskUpdate(status=TaskStatus.TERMINATED, error=reason)
        # `task.reset.v1` moves the row to a new chapter in its own statement
        # (`EventStore.begin_chapter`): status running, progress and result cleared.
        case _:
            return TaskUpdate()
