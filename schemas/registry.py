"""Type name → model: the one place that knows which event types exist."""

from __future__ import annotations

from pydantic import ValidationError

from schemas.admission_events import TaskAdmittedV1, TaskQueuedV1
from schemas.deferral import TaskDeferredV1
from schemas.errors import (
    InvalidEventDataError,
    InvalidEventError,
    UnknownEventTypeError,
    describe,
)
from schemas.events import (
    EventData,
    StepCompletedV1,
    StepFailedV1,
    StepProgressV1,
    StepStartedV1,
    TaskCancelledV1,
    TaskCompletedV1,
    TaskCreatedV1,
    TaskFailedV1,
    TaskPausedV1,
    TaskResetV1,
    TaskResumedV1,
    TaskTerminatedV1,
    TaskTerminatedV2,
)
from schemas.input_events import InputReceivedV1, InputRequestedV1
from schemas.live_events import TaskMetadataUpdatedV1, TaskOutputV1, TaskProgressV1

EVENT_MODELS: dict[str, type[EventData]] = {
    model.event_type: model
    for model in (
        TaskCreatedV1,
        StepStartedV1,
        StepProgressV1,
        StepCompletedV1,
        StepFailedV1,
        TaskPausedV1,
        TaskResumedV1,
        TaskCompletedV1,
        TaskFailedV1,
        TaskCancelledV1,
        TaskTerminatedV1,
        TaskTerminatedV2,
        TaskResetV1,
        TaskProgressV1,
        TaskMetadataUpdatedV1,
        TaskOutputV1,
        InputRequestedV1,
        InputReceivedV1,
        TaskQueuedV1,
        TaskAdmittedV1,
        TaskDeferredV1,
    )
}

TERMINAL_EVENT_TYPES: frozenset[str] = frozenset(
    name for name, model in EVENT_MODELS.items() if model.terminal
)


__all__ = [
    "EVENT_MODELS",
    "TERMINAL_EVENT_TYPES",
    "InvalidEventError",
    "is_terminal",
    "model_for",
    "read_data",
    "validate_data",
]


def model_for(event_type: str) -> type[EventData]:
    try:
        return EVENT_MODELS[event_type]
    except KeyError:
        raise UnknownEventTypeError(event_type) from None


def validate_data(event_type: str, data: object) -> EventData:
    """The type's model, validated from `data` as a PUBLISHER must write it.

    Lax about types (the model's output is canonical anyway) but exact about
    names: a field the model does not know is refused, so a publisher's typo
    fails loudly instead of vanishing from the event.
    """
    model = model_for(event_type)
    try:
        return model.model_validate(data, extra="forbid")
    except ValidationError as exc:
        raise InvalidEventDataError(event_type, describe(exc)) from exc


def read_data(event_type: str, data: object) -> EventData:
    """The type's model, validated from `data` as a READER (a tolerant one).

    Strict about types (a `"3"` where the contract says integer is refused, as a
    consumer validating against `schemas/json/` would), but fields it does not
    know are ignored: a newer producer may add optional fields within a type
    version (docs/events.md, "Versions"), and older readers must keep working.
    """
    model = model_for(event_type)
    try:
        return model.model_validate(data, strict=True, extra="ignore")
    except ValidationError as exc:
        raise InvalidEventDataError(event_type, describe(exc)) from exc


def is_terminal(event_type: str) -> bool:
    return event_type in TERMINAL_EVENT_TYPES
