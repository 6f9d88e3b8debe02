"""Task types, their inputs, and the models that cross the Temporal boundary.

Every workflow and activity takes one input model and returns one output model,
so fields can be added later without breaking stored histories.
"""

from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TaskStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class DemoPipelineInput(BaseModel):
    """`demo.pipeline`: `steps` steps, each sleeping and ticking progress."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(default=3, ge=1, le=1000)
    step_seconds: float = Field(default=0.5, ge=0, le=3600)
    fail_at_step: int | None = Field(default=None, ge=1)
    progress_ticks: int = Field(default=0, ge=0, le=100_000)
    # For rehearsing timeouts: step `hang_at_step` hangs on its first `hang_attempts` attempts.
    hang_at_step: int | None = Field(default=None, ge=1)
    hang_attempts: int = Field(default=1, ge=1)
    # A step attempt's start-to-close timeout; default: twice step_seconds plus 30 s.
    step_timeout_seconds: float | None = Field(default=None, ge=1)


TASK_INPUT_MODELS: dict[str, type[BaseModel]] = {
    "demo.pipeline": DemoPipelineInput,
}


class TaskWorkflowInput(BaseModel):
    task_id: str
    task_type: str
    input: dict[str, Any]
    owner: str | None = None


class TaskWorkflowResult(BaseModel):
    status: TaskStatus
    result: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class RecordEventInput(BaseModel):
    """What the workflow asks `record_event` to persist and publish."""

    event_id: str
    task_id: str
    event_type: str
    data: dict[str, Any]


class RecordEventResult(BaseModel):
    sequence: int
    duplicate: bool


class DemoStepInput(BaseModel):
    task_id: str
    index: int = Field(ge=1)
    total_steps: int = Field(ge=1)
    name: str
    step_seconds: float = Field(ge=0)
    progress_ticks: int = Field(ge=0)
    fail: bool = False
    max_attempts: int = Field(default=3, ge=1)
    hang_attempts: int = Field(default=0, ge=0)


class DemoStepResult(BaseModel):
    index: int
    output: dict[str, Any] = Field(default_factory=dict)


class TaskStatusView(BaseModel):
    """The `status` query's answer."""

    task_id: str
    status: TaskStatus
    current_step: int | None = None
    total_steps: int | None = None
    pause_requested: bool = False
    cancel_requested: bool = False
