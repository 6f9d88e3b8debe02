"""Type name → model: the one place that knows which event types exist."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

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
    TaskResumedV1,
)

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
    )
}

TERMINAL_EVENT_TYPES: frozenset[str] = frozenset(
    name for name, model in EVENT_MODELS.items() if model.terminal
)


class InvalidEventError(ValueError):
    """An event's type is unknown or its data does not match the type's model."""


def model_for(event_type: str) -> type[EventData]:
    try:
        return EVENT_MODELS[event_type]
    except KeyError:
        raise InvalidEventError(f"unknown event type {event_type!r}") from None


def validate_data(event_type: str, data: dict[str, Any]) -> EventData:
    try:
        return model_for(event_type).model_validate(data)
    except ValidationError as exc:
        raise InvalidEventError(f"invalid data for {event_type}: {exc}") from exc


def is_terminal(event_type: str) -> bool:
    return event_type in TERMINAL_EVENT_TYPES
