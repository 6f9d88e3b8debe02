"""The events of a task that waits for a named input (`wait_for_input`, issue 18).

Kept beside `schemas/events.py` (same rules: fields may be added with defaults
within a version, never removed or retyped) so each file stays one screen of
contract. Registered in `schemas/registry.py`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from schemas.events import EventData

_NAME = "The input's name, as the task code asked for it (e.g. `approve`)."


class InputRequestedV1(EventData):
    """Task code waits for the input `name`: deliver it with
    `POST /tasks/{id}/inputs/{name}` before `deadline`. The status is `waiting`."""

    event_type = "task.input.requested.v1"
    name: str = Field(description=_NAME)
    input_schema: dict[str, Any] = Field(
        description="The JSON Schema (2020-12) a delivered value must match.",
    )
    deadline: Annotated[str, Field(json_schema_extra={"format": "date-time"})] | None = Field(
        default=None,
        description="When the wait ends without the input (RFC 3339, UTC); none: no limit.",
    )
    prompt: str | None = Field(default=None, description="What to ask the person, if given.")


class InputReceivedV1(EventData):
    """The wait for the input `name` ended: the value arrived (and the task runs on),
    or the deadline passed (`timed_out`, no value). The status is `running` again."""

    event_type = "task.input.received.v1"
    name: str = Field(description=_NAME)
    value: dict[str, Any] | None = Field(
        default=None, description="The delivered value, as validated; none when timed out."
    )
    timed_out: bool = Field(default=False, description="True when the deadline passed first.")
    via: str | None = Field(
        default=None, description="How it came: `api` (the REST route or the CLI) or `link`."
    )
    delivery_id: str | None = Field(
        default=None, description="The delivery (Temporal update) id; a retry reuses it."
    )
