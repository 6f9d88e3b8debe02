"""A task's opening in one local activity: its `task.created.v1`, and when its type has
a concurrency limit, its claim on a slot and (parked by the API and woken with it) the
line it waited in (`task.queued.v1`, `task.admitted.v1`). Its closing likewise: the
terminal event, then the slot given back.

Each was a local activity of its own, one after another in the run's first workflow
task; on a saturated worker each waited its turn for the event loop (four of them took
230 ms of a quiet tenant's first step under a flood, docs/performance.md). The events
are still the workflow's: their ids come from the workflow, they are recorded in this
order before the workflow moves on, and a retried opening or closing records none
twice.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel

from schemas.admission import AdmissionDecision, AdmissionRelease, AdmissionRequest
from schemas.workflow import RecordEventInput, RecordEventResult

OPEN_TASK: Final = "open_task"
# A task holding a slot ends the same way: its terminal event, then the slot given back
# (`close_task`), one local activity where there were two.
CLOSE_TASK: Final = "close_task"


class ParkedLine(BaseModel):
    """A parked task's line, recorded only if the claim admits it (a woken task's does):
    its place when parked, and the ids and wait the workflow gives its two events."""

    position: int
    queued_event_id: str
    admitted_event_id: str
    waited_seconds: float


class TaskOpening(BaseModel):
    """Only a task with a limit opens this way; others record `task.created.v1` alone."""

    created: RecordEventInput
    admission: AdmissionRequest
    parked: ParkedLine | None = None


class TaskOpened(BaseModel):
    created: RecordEventResult
    decision: AdmissionDecision
    # The parked line's two events were recorded (the claim admitted the task).
    parked_recorded: bool = False


class TaskClosing(BaseModel):
    ending: RecordEventInput
    release: AdmissionRelease


def queued_data(admission: AdmissionRequest, position: int, running: int) -> dict[str, Any]:
    """`task.queued.v1`'s data, whoever records it (the workflow or the opening)."""
    return {
        "concurrency_key": admission.concurrency_key,
        "position": position,
        "limit": admission.limit,
        "running": running,
        "priority": admission.priority,
    }


def admitted_data(admission: AdmissionRequest, waited_seconds: float) -> dict[str, Any]:
    return {
        "concurrency_key": admission.concurrency_key,
        "waited_seconds": round(waited_seconds, 3),
    }
