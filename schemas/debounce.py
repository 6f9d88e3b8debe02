"""The contract of `DebounceWorkflow` (workflows/debounce.py): one per open window.

A window is (tenant, task type, debounce key). The API sends each creation as the
`debounce` update with update-with-start on the window's workflow id; the first
creation's proposed task id becomes the window's task, every later one in the
window is answered with it. `period_seconds` after the last creation the window
closes and starts the task (a child `TaskWorkflow`, abandoned) with the latest
input; a creation that finds the window closing is refused by the validator and
the API opens the next window.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel, Field

DEBOUNCE_WORKFLOW: Final = "DebounceWorkflow"
UPDATE_DEBOUNCE: Final = "debounce"
# The validator's refusal: the window is starting its task; open the next one.
DEBOUNCE_CLOSED: Final = "DebounceClosed"
# The most creations a task's `task.created.v1` lists (it counts all of them).
MAX_LISTED_CREATIONS: Final = 100


def debounce_workflow_id(tenant: str, task_type: str, key: str) -> str:
    digest = hashlib.sha256(f"{tenant}\x00{task_type}\x00{key}".encode()).hexdigest()[:32]
    return f"debounce-{digest}"


class DebounceStart(BaseModel):
    tenant: str
    task_type: str
    key: str
    period_seconds: float = Field(gt=0)


class DebounceCreation(BaseModel):
    """One `POST /tasks` of the window (the update's input)."""

    task_id: str  # proposed: used when this creation opens the window
    input: dict[str, Any]
    request_hash: str
    request_nonce: str


class DebounceAnswer(BaseModel):
    task_id: str
    collapsed: int  # creations in the window so far, this one included


class DebouncedCreation(BaseModel):
    at: datetime
    request_nonce: str


class DebounceSummary(BaseModel):
    """What `task.created.v1` says of the creations a debounced task collapsed."""

    key: str
    period_seconds: float
    collapsed: int
    creations: list[DebouncedCreation] = Field(default_factory=list)


class DebounceResult(BaseModel):
    task_id: str
    collapsed: int
