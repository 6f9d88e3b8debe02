"""The CloudEvents 1.0 envelope every Taskplane event travels in.

`sequence` is a CloudEvents extension attribute: the per-task, dense, 1-based
position assigned by the store when the event commits. An envelope is built
without it (it does not exist yet) and the store splices it in.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

EVENT_SOURCE = "/taskplane"


def format_time(value: datetime) -> str:
    """RFC 3339, UTC, microseconds, `Z` suffix: one spelling everywhere."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class EventEnvelope(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1)
    source: str = Field(default=EVENT_SOURCE, min_length=1)
    type: str = Field(min_length=1)
    subject: str = Field(min_length=1, description="The task id.")
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]
    sequence: int | None = Field(default=None, ge=1)

    @field_serializer("time")
    def _serialize_time(self, value: datetime) -> str:
        return format_time(value)

    @property
    def task_id(self) -> str:
        return self.subject

    def with_sequence(self, sequence: int) -> EventEnvelope:
        return self.model_copy(update={"sequence": sequence})

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)
