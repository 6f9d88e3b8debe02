"""How `GET /tasks/{id}/events` looks in the OpenAPI document.

OpenAPI 3.1 cannot type a `text/event-stream` body frame by frame, so the
response says in words what a frame is, gives an example, and points to the
JSON Schema of every event type (served by `/schemas/events/{type}`). The
same text is the SSE channel's description in `docs/asyncapi.json`.
"""

from __future__ import annotations

import json
from typing import Any

from api.problems import PROBLEM_JSON
from schemas.asyncapi import SSE_FRAME_FORMAT
from schemas.examples import example_envelope
from schemas.registry import EVENT_MODELS


def _event_list() -> str:
    lines = [
        f"- `{event_type}`{' (terminal)' if model.terminal else ''}:"
        f" {(model.__doc__ or '').strip()} Schema: `/schemas/events/{event_type}`."
        for event_type, model in EVENT_MODELS.items()
    ]
    return "\n".join(lines)


def _example_frames() -> str:
    frames = []
    for sequence, event_type in ((4, "task.step.progress.v1"), (5, "task.completed.v1")):
        envelope = {**example_envelope(event_type), "sequence": sequence}
        body = json.dumps(envelope, separators=(",", ":"))
        frames.append(f"id: {sequence}\nevent: {event_type}\ndata: {body}\n\n")
    return ": ping\n\n" + "".join(frames)


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {}}}


SSE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "The task's events as Server-Sent Events (history first, then live).\n\n"
            f"{SSE_FRAME_FORMAT}\nEvent types (each frame's `event:` field and the"
            f" JSON's `type`):\n\n{_event_list()}\n"
        ),
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "string",
                    "description": "A stream of SSE frames; each `data:` line is one"
                    " CloudEvents 1.0 JSON event. Index of schemas: `/schemas/events`.",
                },
                "example": _example_frames(),
            }
        },
    },
    204: {
        "description": "The task ended and the client already has every event: stop reconnecting."
        " No body and no `text/event-stream` content type, so check for it before reading the"
        " stream (httpx-sse's `iter_sse()` raises on it; a browser's `EventSource` closes)."
    },
    400: _problem("`Last-Event-ID` is not a sequence number."),
    404: _problem("No such task."),
}
