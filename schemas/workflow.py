"""The workflow boundary: everything the API, the worker and the workflow must agree on.

Names (workflow type, signals, query, activities, memo keys, error types), the
models that cross the boundary, and the search attributes. Nothing here does
I/O, so a workflow imports it through the sandbox and the API can import it
without loading the workflow or the activities. Changing any value here changes
the contract with running workflows and stored histories: add, never rename.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, Field
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from schemas.debounce import DebounceSummary
from schemas.tasks import TaskStatus

TASK_WORKFLOW: Final = "TaskWorkflow"

# Signals and the one query of `TaskWorkflow`.
SIGNAL_PAUSE: Final = "pause"
SIGNAL_RESUME: Final = "resume"
SIGNAL_CANCEL: Final = "cancel"
CONTROL_SIGNALS: Final = (SIGNAL_PAUSE, SIGNAL_RESUME, SIGNAL_CANCEL)
QUERY_STATUS: Final = "status"
# The update that delivers a waited-for input (`POST /tasks/{id}/inputs/{name}`).
UPDATE_INPUT: Final = "input"
# The API's pause/resume/cancel: an update (`ControlRequest`) with the signals' effect,
# answered once the workflow has applied it, so the caller's next request sees it.
UPDATE_CONTROL: Final = "control"

# Activities: the workflow refers to them by these names only.
RECORD_EVENT: Final = "record_event"
DEMO_STEP: Final = "demo_step"
REQUEST_CANCELLATION: Final = "request_cancellation"

# `ApplicationError` types raised by activities and read by the workflow.
INVALID_EVENT: Final = "InvalidEvent"
STEP_FAILED: Final = "StepFailed"
# An event of a chapter that has ended, or of a run a reset left behind: refused.
CHAPTER_CLOSED: Final = "ChapterClosed"
# Why the `input` update refused a delivery (its validator), and a wait that timed out.
INPUT_NOT_WAITING: Final = "InputNotWaiting"
INPUT_INVALID: Final = "InputInvalid"
INPUT_TIMED_OUT: Final = "InputTimedOut"
# The `control` update's validator refused the transition (details: the task's status).
CONTROL_REFUSED: Final = "ControlRefused"

# Memo keys the API writes when it starts a task (read back by the API only).
MEMO_REQUEST_HASH: Final = "request_hash"
MEMO_REQUEST_NONCE: Final = "request_nonce"
MEMO_TASK_TYPE: Final = "task_type"

# Search attributes: tasks are findable in the Temporal Web UI and CLI by these.
TASK_STATUS = SearchAttributeKey.for_keyword("TaskStatus")
TASK_TYPE = SearchAttributeKey.for_keyword("TaskType")
# The step a task is on (1-based), e.g. `temporal workflow list --query "TaskStep >= 3"`.
TASK_STEP = SearchAttributeKey.for_int("TaskStep")
SEARCH_ATTRIBUTES = (TASK_STATUS, TASK_TYPE, TASK_STEP)
# name → the CLI's type name, for `temporal server start-dev --search-attribute`.
SEARCH_ATTRIBUTE_CLI_TYPES = {
    TASK_STATUS.name: "Keyword",
    TASK_TYPE.name: "Keyword",
    TASK_STEP.name: "Int",
}


def start_search_attributes(task_type: str) -> TypedSearchAttributes:
    """What a task's run shows operators from its start: its type, and `running`.

    Set in the start request, so the workflow needs no upsert command to show them
    (issue 15: each upsert is a visibility write); it upserts `TaskStatus` only when it
    changes from this. `running` from the start: whether a worker has picked the run up
    yet is Temporal's to show (its history), and it is a matter of milliseconds.
    Here (no I/O) so a schedule's run starts its task with the same attributes.
    """
    return TypedSearchAttributes(
        [
            SearchAttributePair(TASK_TYPE, task_type),
            SearchAttributePair(TASK_STATUS, TaskStatus.RUNNING.value),
        ]
    )


_WORKFLOW_ID_PREFIX = "task-"


def workflow_id_for(task_id: str) -> str:
    return f"{_WORKFLOW_ID_PREFIX}{task_id}"


def task_id_from_workflow_id(workflow_id: str) -> str | None:
    """The task a workflow id names, or None for a workflow that is not a task."""
    if not workflow_id.startswith(_WORKFLOW_ID_PREFIX):
        return None
    return workflow_id.removeprefix(_WORKFLOW_ID_PREFIX)


class TaskWorkflowInput(BaseModel):
    task_id: str
    task_type: str
    input: dict[str, Any]
    owner: str | None = None
    # Set by `DebounceWorkflow`: the creations this task collapsed (in `task.created.v1`).
    debounced: DebounceSummary | None = None
    # Concurrency (issue 24), decided by the API at creation: a limit means the task
    # takes a slot of `concurrency_key` (default: the tenant) before its first step.
    # Optional with defaults, so inputs of runs from before them still decode.
    concurrency_key: str | None = None
    concurrency_limit: int | None = Field(default=None, ge=1)
    concurrency_strategy: Literal["queue", "cancel_newest", "cancel_in_progress"] = "queue"
    # 1 (first) to 5; queued order within a tenant, and Temporal's priority key.
    priority: int = Field(default=3, ge=1, le=5)
    # Parked (store/admission_park.py): the API queued the task before its workflow ran,
    # at this position; the run records its `task.queued.v1` / `task.admitted.v1` then.
    parked_position: int | None = Field(default=None, ge=1)


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


class RequestCancellationInput(BaseModel):
    """`request_cancellation`: the run asks Temporal to cancel it (see activities/control.py)."""

    task_id: str


class RecordEventResult(BaseModel):
    sequence: int
    duplicate: bool
    # A reset run's `task.created.v1`: not recorded, its chapter began with `task.reset.v1`.
    superseded: bool = False


class DeliverInputRequest(BaseModel):
    """The `input` update's argument: the value of the input `name` the task waits for."""

    name: str
    value: dict[str, Any]
    via: str | None = None
    delivery_id: str | None = None


class DeliverInputResult(BaseModel):
    """The `input` update's answer: the value was accepted and `task.input.received.v1`
    recorded at `sequence`."""

    name: str
    sequence: int


class ControlRequest(BaseModel):
    """The `control` update's argument: `action` is one of `CONTROL_SIGNALS`."""

    action: Literal["pause", "resume", "cancel"]
    reason: str | None = None


class TaskStatusView(BaseModel):
    """The `status` query's answer."""

    task_id: str
    status: TaskStatus
    current_step: int | None = None
    total_steps: int | None = None
    pause_requested: bool = False
    cancel_requested: bool = False
