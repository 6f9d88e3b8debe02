"""Task types, their inputs, and the status every task is in.

The models that cross the Temporal boundary (workflow and activity inputs and
results) are in `schemas/workflow.py`, the contract between the API, the
workflow and the worker.
"""

from __future__ import annotations

import enum
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from schemas.chat import DemoChatInput

# Attempts of one demo step (the workflow's retry policy, workflows/demo.py).
DEMO_STEP_MAX_ATTEMPTS = 3


class TaskStatus(enum.StrEnum):
    PENDING = "pending"
    # Over its concurrency key's limit: waits for a slot (`task.queued.v1`, issue 24).
    QUEUED = "queued"
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


@runtime_checkable
class PlannedEvents(Protocol):
    """An input model that knows the most events its task can record (with no pause).

    `POST /tasks` refuses (422) an input whose plan exceeds the per-task event budget
    (TASKPLANE_MAX_EVENTS_PER_TASK), so no single request can ask for more; a plugin's
    input model opts in by defining the method (docs/task-types.md).
    """

    def planned_events(self) -> int: ...


def _step_events(ticks: int) -> int:
    return ticks + 2  # started, the progress ticks, completed (or failed)


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

    def planned_events(self) -> int:
        """created + every step's events + the terminal one, with the attempts that the
        flaky or hanging step asks for (a hung attempt: started and failed only)."""
        per_step = _step_events(self.progress_ticks)
        total = 2 + self.steps * per_step
        if self.flaky_at_step is not None and self.flaky_at_step <= self.steps:
            total += min(self.flaky_attempts, DEMO_STEP_MAX_ATTEMPTS - 1) * per_step
        if self.hang_at_step is not None and self.hang_at_step <= self.steps:
            total += min(self.hang_attempts, DEMO_STEP_MAX_ATTEMPTS) * 2
        return total


class DemoFanoutInput(BaseModel):
    """`demo.fanout`: `branches` steps run in parallel, at most `max_parallel` at once."""

    model_config = ConfigDict(extra="forbid")

    branches: int = Field(default=4, ge=1, le=1000)
    max_parallel: int = Field(default=2, ge=1, le=100)
    step_seconds: float = Field(default=0.5, ge=0, le=3600)
    progress_ticks: int = Field(default=0, ge=0, le=100_000)
    fail_at_branch: int | None = Field(default=None, ge=1)

    def planned_events(self) -> int:
        """created + every branch's events + the terminal one."""
        return 2 + self.branches * _step_events(self.progress_ticks)


class DemoApprovalInput(BaseModel):
    """`demo.approval`: a step, then a wait for the input `approve`, then a step more."""

    model_config = ConfigDict(extra="forbid")

    step_seconds: float = Field(default=0.2, ge=0, le=3600)
    # How long to wait for `approve`; then the task fails (default: a day).
    timeout_seconds: float = Field(default=86_400, gt=0, le=366 * 24 * 3600)

    def planned_events(self) -> int:
        """created + two steps + the input requested and received + the terminal one."""
        return 2 + 2 * _step_events(0) + 2


class ApprovalInput(BaseModel):
    """The input `approve` of `demo.approval`: go on, or fail with the comment."""

    model_config = ConfigDict(extra="forbid", title="Approval")

    approved: bool = Field(description="True lets the task go on; false fails it.")
    comment: str | None = Field(default=None, max_length=2000, description="Why, for people.")


TASK_INPUT_MODELS: dict[str, type[BaseModel]] = {
    "demo.pipeline": DemoPipelineInput,
    "demo.fanout": DemoFanoutInput,
    "demo.chat": DemoChatInput,
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
