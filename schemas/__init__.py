"""Event envelope, event models, the type registry, and the task-type models."""

from schemas.decode import decode_event
from schemas.envelope import EVENT_SOURCE, MAX_SEQUENCE, EventEnvelope, format_time
from schemas.errors import (
    MAX_EVENT_BYTES,
    InvalidEventDataError,
    InvalidEventError,
    MalformedEventError,
    OversizedEventError,
    UnknownEventTypeError,
)
from schemas.events import EventData
from schemas.registry import (
    EVENT_MODELS,
    TERMINAL_EVENT_TYPES,
    is_terminal,
    model_for,
    read_data,
    validate_data,
)
from schemas.size import cap_optional_text, cap_text, check_size
from schemas.tasks import TASK_INPUT_MODELS, TaskStatus
from schemas.upcast import latest_type, upcast, upcast_json

__all__ = [
    "EVENT_MODELS",
    "EVENT_SOURCE",
    "MAX_EVENT_BYTES",
    "MAX_SEQUENCE",
    "TASK_INPUT_MODELS",
    "TERMINAL_EVENT_TYPES",
    "EventData",
    "EventEnvelope",
    "InvalidEventDataError",
    "InvalidEventError",
    "MalformedEventError",
    "OversizedEventError",
    "TaskStatus",
    "UnknownEventTypeError",
    "cap_optional_text",
    "cap_text",
    "check_size",
    "decode_event",
    "format_time",
    "is_terminal",
    "latest_type",
    "model_for",
    "read_data",
    "upcast",
    "upcast_json",
    "validate_data",
]
