"""JSON Schemas of the events, built from the models: the published contract.

Each event type gets one self-contained JSON Schema (draft 2020-12) of the
WHOLE CloudEvents envelope as Taskplane emits it, with `type` pinned to the
type's name and `data` = the model's schema, so a consumer in any language can
validate one received message against one file. `index.json` lists them.

The envelope part is written out here by hand rather than derived from
`EventEnvelope`, because the wire contract is stricter than the Python model's
defaults: every attribute we emit is required on the wire.

Only standard JSON Schema 2020-12 keywords appear in a schema, so every
validator compiles it in its strictest mode (Ajv's `strict: true` refuses
unknown keywords); what Taskplane adds about a type (is it terminal, the size
limit) lives in `index.json` instead.

Output is deterministic (sorted keys, fixed indentation, trailing newline), so
the staleness test can compare bytes.
"""

from __future__ import annotations

import json
from typing import Any

from schemas.envelope import (
    DATA_CONTENT_TYPE,
    EVENT_SOURCE,
    MAX_SEQUENCE,
    REQUIRED_ATTRIBUTES,
    SPEC_VERSION,
    TRACEPARENT_PATTERN,
    schema_id,
)
from schemas.errors import MAX_EVENT_BYTES
from schemas.examples import example_envelope
from schemas.registry import EVENT_MODELS
from schemas.upcast import UPCASTERS

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
INDEX_FILE = "index.json"
# ECMA-262 and Python agree on this pattern; JSON Schema's `format: date-time`
# alone is only an annotation by default, so the pattern is what enforces RFC 3339.
RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
EXTENSION_NAME_PATTERN = "^[a-z0-9]+$"


def file_name(event_type: str) -> str:
    return f"{event_type}.json"


def data_schema(
    event_type: str, ref_template: str = "#/$defs/{model}"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model's JSON Schema (validation mode: what a valid `data` may be), and
    the definitions of any nested models, to be placed where `ref_template` points."""
    schema = EVENT_MODELS[event_type].model_json_schema(
        mode="validation", ref_template=ref_template
    )
    defs: dict[str, Any] = schema.pop("$defs", {})
    # The event type's name is the title that means something outside Python.
    schema["title"] = event_type
    return schema, defs


def envelope_properties(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": {"const": SPEC_VERSION, "description": "CloudEvents version."},
        "id": {
            "type": "string",
            "minLength": 1,
            "description": "Unique per event; redeliveries of one event keep its id.",
        },
        "source": {
            "type": "string",
            "minLength": 1,
            "format": "uri-reference",
            "description": f"Who emitted it; Taskplane uses `{EVENT_SOURCE}`.",
        },
        "type": {"const": event_type, "description": "The event type, with its version."},
        "subject": {"type": "string", "minLength": 1, "description": "The task id."},
        "time": {
            "type": "string",
            "format": "date-time",
            "pattern": RFC3339_PATTERN,
            "description": "When the event was recorded (RFC 3339; Taskplane writes UTC, `Z`).",
        },
        "datacontenttype": {"const": DATA_CONTENT_TYPE},
        "dataschema": {
            "const": schema_id(event_type),
            "description": "The `$id` of this schema (absent on events recorded before"
            " Taskplane set it).",
        },
        "sequence": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_SEQUENCE,
            "description": (
                "CloudEvents extension (Integer): the event's 1-based position in its"
                " task, dense and increasing; the SSE frame id."
            ),
        },
        "traceparent": {
            "type": "string",
            "pattern": TRACEPARENT_PATTERN,
            "description": (
                "CloudEvents distributed-tracing extension: the W3C Trace Context"
                " `traceparent` of the span that recorded the event (only while tracing is on)."
            ),
        },
        "tracestate": {
            "type": "string",
            "maxLength": 512,
            "description": "CloudEvents distributed-tracing extension: W3C `tracestate`.",
        },
        "data": data,
    }


def event_schema(event_type: str) -> dict[str, Any]:
    """The full envelope schema of one event type, as published in `schemas/json/`."""
    data, defs = data_schema(event_type)
    schema = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": schema_id(event_type),
        **envelope_schema(event_type, data),
    }
    if defs:
        schema["$defs"] = defs
    return schema


def envelope_schema(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """The envelope schema without dialect, id or definitions, for embedding elsewhere."""
    model = EVENT_MODELS[event_type]
    return {
        "title": event_type,
        "description": (model.__doc__ or event_type).strip(),
        "type": "object",
        "required": sorted(REQUIRED_ATTRIBUTES),
        "properties": envelope_properties(event_type, data),
        # Extension attributes may appear; CloudEvents constrains their names and values.
        # `anyOf`, not a `type` array: Ajv's strict mode refuses union types by default.
        "propertyNames": {"pattern": EXTENSION_NAME_PATTERN},
        "additionalProperties": {
            "anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "boolean"}]
        },
        "examples": [example_envelope(event_type)],
    }


def index() -> dict[str, Any]:
    return {
        "title": "Taskplane event schemas",
        "description": (
            "One JSON Schema per event type, each for the whole CloudEvents 1.0 envelope"
            " (JSON format). A serialized event is at most `maxEventBytes` UTF-8 bytes."
        ),
        "specversion": SPEC_VERSION,
        "source": EVENT_SOURCE,
        "maxEventBytes": MAX_EVENT_BYTES,
        "events": {
            event_type: {
                "schema": file_name(event_type),
                "$id": schema_id(event_type),
                "description": (model.__doc__ or event_type).strip(),
                "terminal": model.terminal,
                # Readers get the newest version: an older one names its successor.
                **(
                    {"supersededBy": UPCASTERS[event_type].target}
                    if event_type in UPCASTERS
                    else {}
                ),
            }
            for event_type, model in EVENT_MODELS.items()
        },
    }


def dumps(document: Any) -> str:
    """The one serialization of every generated file: stable bytes for stable input."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render() -> dict[str, str]:
    """File name → content for `schemas/json/`."""
    files = {file_name(event_type): dumps(event_schema(event_type)) for event_type in EVENT_MODELS}
    files[INDEX_FILE] = dumps(index())
    return files
