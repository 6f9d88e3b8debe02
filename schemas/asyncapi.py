"""The AsyncAPI 3.0 document of Taskplane's event channels, built from the registry.

Three channels carry the same CloudEvents JSON:

- `/tasks/{task_id}/events` (HTTP, Server-Sent Events): what clients read;
- `task.{task_id}` (Redis pub/sub): live fan-out from the worker to API processes;
- `taskplane:events` (Redis stream): the durable feed for consumer groups, one
  entry per event with fields `topic` and `payload`.

Message payloads embed the same envelope schemas as `schemas/json/` (minus
`$schema`/`$id`, which AsyncAPI's draft-07-based schema objects do not need).
"""

from __future__ import annotations

from typing import Any

from schemas.contract import data_schema, envelope_schema
from schemas.examples import example_envelope
from schemas.registry import EVENT_MODELS

ASYNCAPI_VERSION = "3.0.0"
# The version of the event contract this document describes; bump on any change
# a reader should notice (a new type, a new optional field).
CONTRACT_VERSION = "1.0.0"
SSE_CHANNEL = "/tasks/{task_id}/events"
STREAM_KEY = "taskplane:events"

SSE_FRAME_FORMAT = """\
First, unless `?snapshot=false`, one `event: snapshot` frame with no `id:` line: its
data is the task's current state as `GET /tasks/{id}` returns it (status, progress,
metadata, output stream lengths, `last_sequence`). It takes no sequence and leaves
`Last-Event-ID` alone. Then one SSE frame per event, in `sequence` order, no gaps,
no duplicates:

    id: <sequence>
    event: <type, e.g. task.step.progress.v1>
    data: <the CloudEvents JSON of the event, on one line>

A comment frame (`: ping`) is sent every few seconds while nothing happens. On
reconnect, send `Last-Event-ID: <last sequence seen>` (browsers do it) or
`?after=<sequence>`; the stream resumes after it. The stream ends after the
task's current terminal event (`task.completed.v1`, `task.failed.v1`,
`task.cancelled.v1`, `task.terminated.v2`; `"terminal": true` in the schema index).
`204 No Content` means the task has
ended and the client already has every event: stop reconnecting. An operator's
reset in Temporal opens a new chapter (`task.reset.v1`, then the new run's
events, then one terminal event): a stream that reconnects after the earlier
terminal event gets the new chapter. If the server cannot go on, it sends one
`event: error` frame whose data is an RFC 9457 problem+json object, then closes.
Events arrive at the newest version of their type (a stored `task.terminated.v1`
as `task.terminated.v2`); `?version=stored` sends each exactly as recorded.
"""


def _task_id_parameter() -> dict[str, Any]:
    return {"description": "The task id (a UUID); also the events' `subject`."}


def _event_messages() -> dict[str, Any]:
    return {
        event_type: {"$ref": f"#/components/messages/{event_type}"} for event_type in EVENT_MODELS
    }


def _operation_messages(channel: str) -> list[dict[str, str]]:
    return [{"$ref": f"#/channels/{channel}/messages/{event_type}"} for event_type in EVENT_MODELS]


def _components() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for event_type, model in EVENT_MODELS.items():
        data, defs = data_schema(event_type, ref_template="#/components/schemas/{model}")
        schemas.update(defs)
        schemas[event_type] = envelope_schema(event_type, data)
        messages[event_type] = {
            "name": event_type,
            "title": event_type,
            "summary": (model.__doc__ or event_type).strip(),
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{event_type}"},
            "examples": [{"name": "example", "payload": example_envelope(event_type)}],
        }
    messages["streamError"] = {
        "name": "error",
        "title": "Stream error",
        "summary": "The server cannot continue the stream; reconnect with Last-Event-ID.",
        "contentType": "application/problem+json",
        "payload": {
            "type": "object",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
            },
        },
    }
    messages["streamEntry"] = {
        "name": "streamEntry",
        "title": "Durable stream entry",
        "summary": "One entry of the Redis stream per published event (XADD fields).",
        "payload": {
            "type": "object",
            "required": ["topic", "payload"],
            "properties": {
                "topic": {
                    "type": "string",
                    "pattern": r"^task\..+$",
                    "description": "The live topic the event went to, `task.{task_id}`.",
                },
                "payload": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "description": (
                        "The serialized event: valid against the schema of its `type`"
                        " (see the event messages)."
                    ),
                },
            },
        },
    }
    return {"schemas": schemas, "messages": messages}


def document() -> dict[str, Any]:
    redis = [{"$ref": "#/servers/redis"}]
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Taskplane events",
            "version": CONTRACT_VERSION,
            "description": (
                "Every change a client can see is a CloudEvents 1.0 event (JSON format),"
                " recorded in Postgres with a dense per-task `sequence`, then published."
                " JSON Schemas: `schemas/json/` and `GET /schemas/events`. Guide: docs/events.md."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "api": {
                "host": "localhost:8000",
                "protocol": "http",
                "description": "The Taskplane API (`taskplane api`); clients stream events here.",
            },
            "redis": {
                "host": "localhost:6379",
                "protocol": "redis",
                "description": "The internal broker. Not a public interface: consumers"
                " outside Taskplane read the SSE channel.",
            },
        },
        "channels": {
            "taskEvents": {
                "address": SSE_CHANNEL,
                "title": "A task's events over Server-Sent Events",
                "description": SSE_FRAME_FORMAT,
                "servers": [{"$ref": "#/servers/api"}],
                "parameters": {"task_id": _task_id_parameter()},
                "messages": {
                    **_event_messages(),
                    "streamError": {"$ref": "#/components/messages/streamError"},
                },
            },
            "taskTopic": {
                "address": "task.{task_id}",
                "title": "A task's live topic (Redis pub/sub)",
                "description": (
                    "At-most-once live fan-out; a message may be lost, duplicated or"
                    " reordered, and subscribers heal gaps from the store by `sequence`."
                ),
                "servers": redis,
                "parameters": {"task_id": _task_id_parameter()},
                "messages": _event_messages(),
            },
            "eventStream": {
                "address": STREAM_KEY,
                "title": "Every event, durably (Redis stream)",
                "description": (
                    "Capped (approximately) stream read with consumer groups. Order is"
                    " publish order: per task it may repeat or skip, so consumers"
                    " deduplicate by event `id` and order by `sequence`."
                ),
                "servers": redis,
                "messages": {"streamEntry": {"$ref": "#/components/messages/streamEntry"}},
            },
        },
        "operations": {
            "streamTaskEvents": {
                "action": "receive",
                "title": "Follow a task",
                "summary": "GET the SSE stream of one task, history first, then live.",
                "description": SSE_FRAME_FORMAT,
                "channel": {"$ref": "#/channels/taskEvents"},
                "messages": [
                    *_operation_messages("taskEvents"),
                    {"$ref": "#/channels/taskEvents/messages/streamError"},
                ],
                "bindings": {
                    "http": {
                        "method": "GET",
                        "query": {
                            "type": "object",
                            "properties": {
                                "after": {
                                    "type": "integer",
                                    "minimum": 0,
                                    "description": "Resume after this sequence"
                                    " (`Last-Event-ID` wins).",
                                },
                                "history": {
                                    "type": "boolean",
                                    "default": True,
                                    "description": "false: live events only.",
                                },
                                "version": {
                                    "type": "string",
                                    "enum": ["latest", "stored"],
                                    "default": "latest",
                                    "description": "`latest`: each event at the newest"
                                    " version of its type (older stored versions are"
                                    " upcast); `stored`: each event exactly as recorded.",
                                },
                            },
                        },
                        "bindingVersion": "0.3.0",
                    }
                },
            },
            "publishTaskEvent": {
                "action": "send",
                "summary": "The worker publishes each event after its commit (and the outbox"
                " relay republishes what failed to go out).",
                "channel": {"$ref": "#/channels/taskTopic"},
                "messages": _operation_messages("taskTopic"),
            },
            "receiveTaskEvent": {
                "action": "receive",
                "summary": "Each API process subscribes once and fans out to its SSE clients.",
                "channel": {"$ref": "#/channels/taskTopic"},
                "messages": _operation_messages("taskTopic"),
            },
            "appendEventStream": {
                "action": "send",
                "summary": "The same publish appends the event to the durable stream.",
                "channel": {"$ref": "#/channels/eventStream"},
                "messages": [{"$ref": "#/channels/eventStream/messages/streamEntry"}],
            },
            "consumeEventStream": {
                "action": "receive",
                "summary": "Durable consumers read with a consumer group; invalid entries"
                " are counted, logged and dead-lettered.",
                "channel": {"$ref": "#/channels/eventStream"},
                "messages": [{"$ref": "#/channels/eventStream/messages/streamEntry"}],
            },
        },
        "components": _components(),
    }
