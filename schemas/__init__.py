"""Event envelope, event models, the type registry, and the task-type models."""

from schemas.envelope import EVENT_SOURCE, EventEnvelope, format_time
from schemas.events import EventData
from schemas.registry import (
    EVENT_MODELS,
    TERMINAL_EVENT_TYPES,
    InvalidEventError,
    is_terminal,
    model_for,
    validate_data,
)
from schemas.tasks import TASK_INPUT_MODELS, TaskStatus

__all__ = [
    "EVENT_MODELS",
    "EVENT_SOURCE",
    "TASK_INPUT_MODELS",
    "TERMINAL_EVENT_TYPES",
    "EventData",
    "EventEnvelope",
    "InvalidEventError",
    "TaskStatus",
    "format_time",
    "is_terminal",
    "model_for",
    "validate_data",
]
