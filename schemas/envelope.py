"""The CloudEvents 1.0 envelope every Taskplane event travels in.

Attribute names, types and spellings follow the CloudEvents 1.0 core spec and
its JSON event format (https://github.com/cloudevents/spec/blob/v1.0.2/):

- `specversion` "1.0", `id`, `source` (URI-reference), `type` are required;
  `subject` (the task id), `time` (RFC 3339, always UTC with a `Z` here) and
  `datacontenttype` "application/json" are optional in the spec and always
  set by Taskplane; `data` is a JSON object (never `data_base64`).
- `sequence` is an extension attribute of CloudEvents type Integer (a signed
  32-bit JSON number): the per-task, dense, 1-based position assigned by the
  store when the event commits. An envelope is built without it (it does not
  exist yet) and the store splices it in.
- `dataschema` (optional in the spec, set on every event Taskplane records) is
  the `$id` of the type's published JSON Schema, `urn:taskplane:schemas:events:<type>`:
  an absolute URI, as CloudEvents requires, that stays true wherever the API
  runs (`GET /schemas/events/<dataschema>` serves the file). Events recorded
  before it existed lack it.
- `traceparent` and `tracestate` are the CloudEvents distributed-tracing
  extension (W3C Trace Context strings), set only while tracing is on.
- Unknown extension attributes are carried through, but their names must be
  lowercase ASCII letters and digits and their values JSON strings, integers
  or booleans, as the spec requires.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)

EVENT_SOURCE = "/taskplane"
SPEC_VERSION: Final = "1.0"
DATA_CONTENT_TYPE: Final = "application/json"
# CloudEvents `Integer` is a signed 32-bit number.
MAX_SEQUENCE = 2**31 - 1

# What every serialized Taskplane event carries (`decode_event` and the JSON Schemas
# require all of them): the four CloudEvents requires, plus the optional ones we always set.
REQUIRED_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "specversion",
        "id",
        "source",
        "type",
        "subject",
        "time",
        "datacontenttype",
        "data",
        "sequence",
    }
)

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})",
)
_EXTENSION_NAME = re.compile(r"[a-z0-9]+")
# W3C Trace Context `traceparent`: version-traceid-parentid-flags, lowercase hex.
TRACEPARENT_PATTERN = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"


SCHEMA_ID_PREFIX: Final = "urn:taskplane:schemas:events:"


def schema_id(event_type: str) -> str:
    """The `$id` of the type's published schema, and every event's `dataschema`."""
    return f"{SCHEMA_ID_PREFIX}{event_type}"


def format_time(value: datetime) -> str:
    """RFC 3339, UTC, microseconds, `Z` suffix: one spelling everywhere."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class EventEnvelope(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"] = SPEC_VERSION
    id: str = Field(min_length=1)
    source: str = Field(default=EVENT_SOURCE, min_length=1)
    type: str = Field(min_length=1)
    subject: str = Field(min_length=1, description="The task id.")
    time: AwareDatetime
    datacontenttype: Literal["application/json"] = DATA_CONTENT_TYPE
    dataschema: str | None = Field(
        default=None, min_length=1, description="The `$id` of the type's published schema."
    )
    data: dict[str, Any]
    sequence: int | None = Field(default=None, ge=1, le=MAX_SEQUENCE, strict=True)
    # CloudEvents distributed-tracing extension: the W3C Trace Context of the span that
    # recorded the event, so a consumer's span joins the task's trace. Absent while
    # tracing is off (docs/operations.md).
    traceparent: str | None = Field(
        default=None,
        pattern=TRACEPARENT_PATTERN,
        description="W3C `traceparent` of the span that recorded the event.",
    )
    tracestate: str | None = Field(
        default=None, max_length=512, description="W3C `tracestate` that came with it."
    )

    @field_validator("time", mode="before")
    @classmethod
    def _require_rfc3339(cls, value: object) -> object:
        # pydantic also takes unix numbers and other ISO 8601 shapes; the spec does not.
        if isinstance(value, str) and not _RFC3339.fullmatch(value):
            raise ValueError("time must be an RFC 3339 timestamp with an offset")
        if isinstance(value, int | float):
            raise ValueError("time must be an RFC 3339 string, not a number")
        return value

    @model_validator(mode="after")
    def _check_extensions(self) -> EventEnvelope:
        for name, value in (self.model_extra or {}).items():
            if not _EXTENSION_NAME.fullmatch(name):
                raise ValueError(
                    f"extension attribute {name!r}: names are lowercase letters and digits"
                )
            if not isinstance(value, str | int | bool):
                raise ValueError(f"extension attribute {name!r}: value must be a string/int/bool")
        return self

    @field_serializer("time")
    def _serialize_time(self, value: datetime) -> str:
        return format_time(value)

    @property
    def task_id(self) -> str:
        return self.subject

    def with_sequence(self, sequence: int) -> EventEnvelope:
        # model_copy skips validation; the bound is re-checked here on purpose.
        if not 1 <= sequence <= MAX_SEQUENCE:
            raise ValueError(f"sequence {sequence} outside 1..{MAX_SEQUENCE}")
        return self.model_copy(update={"sequence": sequence})

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)
