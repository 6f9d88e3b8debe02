"""One pydantic model per v1 event type: the `data` of the envelope.

These models are the contract: `schemas/json/` is generated from them and
checked in, and a test refuses any change that would break a consumer of a
published version. Within a version, fields may be added (with defaults) but
never removed, retyped, or made required (readers ignore fields they do not
know, so an added optional field breaks nobody); a breaking change gets a new type
name (`…v2`) and both types are registered while consumers migrate. The
docstrings and field descriptions here become the JSON Schema descriptions.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

_STEP_INDEX = "The step's 1-based position in the task."
_STEP_NAME = "The step's name, e.g. `step-2`."
_TOTAL_STEPS = "How many steps the task has, when known."


class EventData(BaseModel):
    # `ignore`: a reader is tolerant, so a newer producer may add optional fields without
    # breaking it, and the published schemas leave `data` open (no `additionalProperties`).
    # Publishers are held to the exact fields by `schemas.registry.validate_data`, which
    # validates with `extra="forbid"`: their typo is an error, not a silently dropped field.
    model_config = ConfigDict(extra="ignore", frozen=True)
    event_type: ClassVar[str]
    terminal: ClassVar[bool] = False


class TaskCreatedV1(EventData):
    """The task's workflow started: always the task's first event (sequence 1)."""

    event_type = "task.created.v1"
    task_type: str = Field(description="The task type, e.g. `demo.pipeline`.")
    input: dict[str, Any] = Field(description="The task's input, as validated for its type.")
    owner: str | None = Field(default=None, description="Who asked for the task, if known.")
    # An object, not a nested model: the published schemas stay one flat document each.
    debounced: dict[str, Any] | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="A debounced task: the creations it collapsed (`key`, `period_seconds`,"
        " `collapsed`, and `creations`: up to 100 of `{at, request_nonce}`); it started with"
        " the latest one's input.",
    )


class StepStartedV1(EventData):
    """An attempt of a step began (once per attempt: a retried step starts again)."""

    event_type = "task.step.started.v1"
    index: int = Field(ge=1, description=_STEP_INDEX)
    name: str = Field(description=_STEP_NAME)
    attempt: int = Field(ge=1, description="The attempt number, 1 for the first.")
    total_steps: int | None = Field(default=None, ge=1, description=_TOTAL_STEPS)


class StepProgressV1(EventData):
    """A running step reports how far it got; may be emitted many times per step."""

    event_type = "task.step.progress.v1"
    index: int = Field(ge=1, description=_STEP_INDEX)
    name: str = Field(description=_STEP_NAME)
    percent: float = Field(ge=0, le=100, description="How much of this step is done, 0 to 100.")
    message: str | None = Field(default=None, description="A human-readable status line.")
    total_steps: int | None = Field(default=None, ge=1, description=_TOTAL_STEPS)
    attempt: int | None = Field(
        default=None,
        ge=1,
        description="The attempt that reported it (1 = first; retries count up).",
    )


class StepCompletedV1(EventData):
    """A step finished successfully (once per step)."""

    event_type = "task.step.completed.v1"
    index: int = Field(ge=1, description=_STEP_INDEX)
    name: str = Field(description=_STEP_NAME)
    output: dict[str, Any] = Field(
        default_factory=dict,
        description="The step's small result; large outputs are referenced by link.",
    )
    duration_seconds: float = Field(ge=0, description="Wall time of the successful attempt.")
    total_steps: int | None = Field(default=None, ge=1, description=_TOTAL_STEPS)
    attempt: int | None = Field(
        default=None,
        ge=1,
        description="The attempt that reported it (1 = first; retries count up).",
    )


class StepFailedV1(EventData):
    """An attempt of a step failed or timed out; `will_retry` says whether another follows."""

    event_type = "task.step.failed.v1"
    index: int = Field(ge=1, description=_STEP_INDEX)
    name: str = Field(description=_STEP_NAME)
    error: str = Field(description="What went wrong, for humans.")
    attempt: int = Field(ge=1, description="The attempt that failed.")
    will_retry: bool = Field(description="True when another attempt of this step will run.")


class TaskPausedV1(EventData):
    """The task paused at a step boundary, after a pause was requested."""

    event_type = "task.paused.v1"
    reason: str | None = Field(default=None, description="Why, if the requester said.")


class TaskResumedV1(EventData):
    """A paused task resumed; the next step starts after this."""

    event_type = "task.resumed.v1"


class TaskCompletedV1(EventData):
    """The task finished successfully. Terminal: nothing follows it."""

    event_type = "task.completed.v1"
    terminal = True
    result: dict[str, Any] = Field(default_factory=dict, description="The task's result.")


class TaskFailedV1(EventData):
    """The task failed for good. Terminal: nothing follows it."""

    event_type = "task.failed.v1"
    terminal = True
    error: str = Field(description="What went wrong, for humans.")
    step: int | None = Field(default=None, ge=1, description="The step that failed, if any.")


class TaskCancelledV1(EventData):
    """The task was cancelled (by request or through Temporal). Terminal."""

    event_type = "task.cancelled.v1"
    terminal = True
    reason: str | None = Field(default=None, description="Why, if the requester said.")


class TaskTerminatedV1(EventData):
    """The run ended without the task's code: an operator terminated it in Temporal, or a
    workflow timeout closed it. Recorded by the worker's reconciler. Terminal."""

    event_type = "task.terminated.v1"
    terminal = True
    reason: str | None = Field(default=None, description="The reason Temporal recorded, if any.")
    close_status: str = Field(
        description="Temporal's close status of the run: `TERMINATED`, `TIMED_OUT`, …"
    )
    run_id: str = Field(description="The Temporal run that ended.")
    identity: str | None = Field(
        default=None, description="Who terminated it, as Temporal recorded (e.g. the CLI user)."
    )


class TaskTerminatedV2(EventData):
    """The run ended without the task's code: an operator terminated it in Temporal, or a
    workflow timeout closed it. Terminal. v2 of `task.terminated.v1`: `timed_out` is
    required, so a consumer need not know Temporal's status names to tell a timeout from
    an operator's terminate. A stored v1 event reads back as v2 (`schemas.upcast`)."""

    event_type = "task.terminated.v2"
    terminal = True
    reason: str | None = Field(default=None, description="The reason Temporal recorded, if any.")
    close_status: str = Field(
        description="Temporal's close status of the run: `TERMINATED`, `TIMED_OUT`, …"
    )
    timed_out: bool = Field(description="True when a workflow timeout closed the run.")
    run_id: str = Field(description="The Temporal run that ended.")
    identity: str | None = Field(
        default=None, description="Who terminated it, as Temporal recorded (e.g. the CLI user)."
    )


class TaskResetV1(EventData):
    """An operator reset the task's workflow in Temporal: a new chapter begins.

    The first event of the new run. Sequences go on; the status is `running`
    again and progress restarts with the chapter. Every chapter ends with
    exactly one terminal event."""

    event_type = "task.reset.v1"
    from_run_id: str | None = Field(
        default=None, description="The run whose chapter ended (or was cut short) by the reset."
    )
    to_run_id: str = Field(description="The new run: every later event belongs to it.")
    reset_point: str | None = Field(
        default=None, description="Where the new run took over the old run's history, if known."
    )
    reason: str | None = Field(default=None, description="The operator's reason, if given.")
