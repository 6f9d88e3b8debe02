"""`?version=`: which version of an upcast type a reader of events gets.

By default the SSE stream and `/history` serve every event at the latest version
of its type (`schemas.upcast`): a recorded `task.terminated.v1` (what the
reconciler records) is read as `task.terminated.v2`, so a client knows only the
newest versions.
A client still on an older version asks for `?version=stored`: each event
exactly as it was recorded, byte for byte.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query

from schemas import latest_type, upcast_json

EventVersion = Literal["latest", "stored"]

VERSION_DOC = (
    "`latest` (default): each event at the newest version of its type (an event stored"
    " as `task.terminated.v1` arrives as `task.terminated.v2`). `stored`: each event"
    " exactly as recorded."
)

VersionQuery = Annotated[EventVersion, Query(description=VERSION_DOC)]


def as_requested(envelope_json: str, event_type: str, version: EventVersion) -> tuple[str, str]:
    """(type, serialized event) in the version the client asked for."""
    if version == "stored":
        return event_type, envelope_json
    return latest_type(event_type), upcast_json(envelope_json, event_type)
