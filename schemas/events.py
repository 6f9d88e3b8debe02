"""One pydantic model per v1 event type: the `data` of the envelope.

Within a version, fields may be added (with defaults) but never removed or
retyped; a breaking change gets a new type name (`…v2`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field


class EventData(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    event_type: ClassVar[str]
    terminal: ClassVar[bool] = False


class TaskCreatedV1(EventData):
    event_type = "task.created.v1"
    task_type: str
    input: dict[str, Any]
    owner: str | None = None


class StepStartedV1(EventData):
    event_type = "task.step.started.v1"
    index: int = Field(ge=1)
    name: str
    attempt: int = Field(ge=1)
    total_steps: int | None = Field(default=None, ge=1)


class StepProgressV1(EventData):
    event_type = "task.step.progress.v1"
    index: int = Field(ge=1)
    name: str
    percent: float = Field(ge=0, le=100)
    message: str | None = None
    total_steps: int | None = Field(default=None, ge=1)


class StepCompletedV1(EventData):
    event_type = "task.step.completed.v1"
    index: int = Field(ge=1)
    name: str
    output: dict[str, Any] = Field(default_factory=dict)
    duration_seconds: float = Field(ge=0)
    total_steps: int | None = Field(default=None, ge=1)


class StepFailedV1(EventData):
    event_type = "task.step.failed.v1"
    index: int = Field(ge=1)
    name: str
    error: str
    attempt: int = Field(ge=1)
    will_retry: bool


class TaskPausedV1(EventData):
    event_type = "task.paused.v1"
    reason: str | None = None


class TaskResumedV1(EventData):
    event_type = "task.resumed.v1"


class TaskCompletedV1(EventData):
    event_type = "task.completed.v1"
    terminal = True
    result: dict[str, Any] = Field(default_factory=dict)


class TaskFailedV1(EventData):
    event_type = "task.failed.v1"
    terminal = True
    error: str
    step: int | None = Field(default=None, ge=1)


class TaskCancelledV1(EventData):
    event_type = "task.cancelled.v1"
    terminal = True
    reason: str | None = None
