"""Task types, their inputs, and the status every task is in.

The models that cross the Temporal boundary (workflow and activity inputs and
results) are in `schemas/workflow.py`, the contract between the API, the
workflow and the worker.
"""

from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TaskStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    # Task code waits for a named input (`wait_for_input`, `POST /tasks/{id}/inputs/{name}`).
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TERMINATED = "terminated"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.TERMINATED}
)


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
    # Step `flaky_at_step` fails (retryably) on its first `flaky_attempts` attempts.
    flaky_at_step: int | None = Field(default=None, ge=1)
    flaky_attempts: int = Field(default=1, ge=1)
    # A durable timer before the first step ("run this in an hour").
    start_delay_seconds: float = Field(default=0, ge=0, le=366 * 24 * 3600)


class DemoFanoutInput(BaseModel):
    """`demo.fanout`: `branches` steps run in parallel, at most `max_parallel` at once."""

    model_config = ConfigDict(extra="forbid")

    branches: int = Field(default=4, ge=1, le=1000)
    max_parallel: int = Field(default=2, ge=1, le=100)
    step_seconds: float = Field(default=0.5, ge=0, le=3600)
    progress_ticks: int = Field(default=0, ge=0, le=100_000)
    fail_at_branch: int | None = Field(default=None, ge=1)


class DemoApprovalInput(BaseModel):
    """`demo.approval`: a step, then a wait for the input `approve`, then a step more."""

    model_config = ConfigDict(extra="forbid")

    step_seconds: float = Field(default=0.2, ge=0, le=3600)
    # How long to wait for `approve`; then the task fails (default: a day).
    timeout_seconds: float = Field(default=86_400, gt=0, le=366 * 24 * 3600)


class ApprovalInput(BaseModel):
    """The input `approve` of `demo.approval`: go on, or fail with the comment."""

    model_config = ConfigDict(extra="forbid", title="Approval")

    approved: bool = Field(description="True lets the task go on; false fails it.")
    comment: str | None = Field(default=None, max_length=2000, description="Why, for people.")


TASK_INPUT_MODELS: dict[str, type[BaseModel]] = {
    "demo.pipeline": DemoPipelineInput,
    "demo.fanout": DemoFanoutInput,
    "demo.approval": DemoApprovalInput,
}


def register_task_input(task_type: str, model: type[BaseModel]) -> None:
    """Make the API accept `task_type` with inputs validated by `model` (plugins)."""
    existing = TASK_INPUT_MODELS.get(task_type)
    if existing is not None and existing is not model:
        raise ValueError(f"task type {task_type!r} is already registered")
    TASK_INPUT_MODELS[task_type] = model


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
    flaky_attempts: int = Field(default=0, ge=0)


class DemoStepResult(BaseModel):
    index: int
    output: dict[str, Any] = Field(default_factory=dict)
