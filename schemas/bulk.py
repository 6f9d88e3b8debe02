"""Bulk operations: the request's filter, and the bulk workflow's boundary.

`POST /tasks/bulk` names an action and a filter; the bulk workflow (workflows/bulk.py)
selects the tenant's matching tasks from the read model, then acts on each through the
task's `control` update, as `POST /tasks/{id}/pause|resume|cancel` does. Nothing here
does I/O: the workflow imports it through the sandbox.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from schemas.tasks import TaskStatus

BULK_WORKFLOW: Final = "BulkOperationWorkflow"
BULK_SELECT: Final = "bulk_select"
BULK_ACT: Final = "bulk_act"
BULK_FINISH: Final = "bulk_finish"


def bulk_task_queue(task_queue: str) -> str:
    """Where bulk operations run: a queue of their own beside the tasks' (worker/bulk_worker.py)."""
    return f"{task_queue}-bulk"


BulkAction = Literal["cancel", "pause", "resume"]

# What became of one matched task.
OUTCOME_DONE: Final = "done"
OUTCOME_SKIPPED: Final = "skipped"
OUTCOME_FAILED: Final = "failed"


class BulkStatus(enum.StrEnum):
    PENDING = "pending"  # accepted; its workflow has not selected the tasks yet
    SELECTING = "selecting"  # reading the matching tasks from the read model
    RUNNING = "running"  # acting on them
    COMPLETED = "completed"  # every matched task has its outcome


def _as_list(value: Any) -> Any:
    """`"running"` is `["running"]`: one status or several."""
    return [value] if isinstance(value, str) else value


def _time_text(value: Any) -> Any:
    """Times as RFC 3339 text only: a bare number is no time here (pydantic would read it
    as Unix seconds, which the schema does not say)."""
    if isinstance(value, int | float):
        raise ValueError("a time must be an RFC 3339 string with a time zone")
    return value


FilterTime = Annotated[AwareDatetime | None, BeforeValidator(_time_text)]


class BulkFilter(BaseModel):
    """Which of the caller's tasks the action applies to: every criterion given must hold.

    Only tasks the read model knows when the operation selects (not `pending` ones) and
    created before the operation was requested are matched."""

    model_config = ConfigDict(extra="forbid")

    status: Annotated[list[TaskStatus] | None, BeforeValidator(_as_list)] = Field(
        default=None,
        min_length=1,
        max_length=len(TaskStatus),
        description="One status or a list of them (any of).",
    )
    type: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"^[^\x00]+$")
    created_before: FilterTime = None
    created_after: FilterTime = None
    concurrency_key: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=r"^[^\x00]+$"
    )

    @model_validator(mode="after")
    def _sensible(self) -> BulkFilter:
        if not self.model_dump(exclude_none=True):
            raise ValueError(
                "the filter must name at least one criterion (to act on every open task,"
                ' give "status": ["running", "paused", "waiting"])'
            )
        if self.created_before and self.created_after and self.created_after >= self.created_before:
            raise ValueError("created_after must be earlier than created_before")
        return self


class BulkWorkflowInput(BaseModel):
    """The bulk workflow's argument, and its state across continue-as-new."""

    bulk_id: str
    # How long an activity may go without a heartbeat before another worker retries it.
    heartbeat_seconds: float = 30.0
    # Pages one run acts on before it continues as new.
    pages_per_run: int = 100
    selected: bool = False
    pages: int = 0


class BulkStepInput(BaseModel):
    """Each bulk activity's argument: everything else is in the operation's row."""

    bulk_id: str


class BulkPageResult(BaseModel):
    acted: int
    # Matched tasks still without an outcome after this page.
    remaining: int


class BulkCounts(BaseModel):
    matched: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    # "outcome: reason" → how many tasks, for the skipped and failed ones.
    reasons: dict[str, int] = Field(default_factory=dict)

    @property
    def pending(self) -> int:
        return self.matched - self.done - self.skipped - self.failed


class BulkOperation(BaseModel):
    """One operation as stored (the API's view adds links)."""

    id: str
    tenant: str
    action: BulkAction
    filter: BulkFilter
    status: BulkStatus
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
