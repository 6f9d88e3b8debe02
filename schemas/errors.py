"""Why an event was refused: one typed error per reason, all `InvalidEventError`.

    InvalidEventError (ValueError)      anything that is not a valid Taskplane event
     ├── MalformedEventError            not JSON, not an object, or an envelope
     │                                  attribute missing / mistyped / out of range
     ├── UnknownEventTypeError          `type` names no registered model
     ├── InvalidEventDataError          `data` does not match the type's model
     └── OversizedEventError            the serialized envelope exceeds 64 KiB

Publishers catch the base class and fail the step without retrying (the same
input would fail again); consumers count, log and dead-letter by subclass.
"""

from __future__ import annotations

from pydantic import ValidationError

# CloudEvents 1.0 asks every intermediary to forward events of at least 64 KiB
# (spec §"Size Limits"); anything larger may be dropped on the way. A large
# step output belongs behind a link, not in the event.
MAX_EVENT_BYTES = 64 * 1024


class InvalidEventError(ValueError):
    """An event that must not be published or consumed."""


class MalformedEventError(InvalidEventError):
    """Bad JSON, or an envelope attribute that is missing, mistyped or out of range."""


class UnknownEventTypeError(InvalidEventError):
    """The envelope's `type` is not in the registry."""

    def __init__(self, event_type: str) -> None:
        super().__init__(f"unknown event type {event_type!r}")
        self.event_type = event_type


class InvalidEventDataError(InvalidEventError):
    """The envelope is fine but its `data` does not match the type's model."""

    def __init__(self, event_type: str, detail: str) -> None:
        super().__init__(f"invalid data for {event_type}: {detail}")
        self.event_type = event_type


class OversizedEventError(InvalidEventError):
    """The serialized envelope is larger than `MAX_EVENT_BYTES`."""

    def __init__(self, size: int, limit: int = MAX_EVENT_BYTES) -> None:
        super().__init__(
            f"serialized event is {size} bytes, over the {limit}-byte limit;"
            " put large payloads behind a link"
        )
        self.size = size
        self.limit = limit


def describe(exc: ValidationError) -> str:
    """One `field: problem` per error, without echoing the input back."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '<root>'}: {error['msg']}"
        for error in exc.errors(include_url=False, include_input=False)
    )
