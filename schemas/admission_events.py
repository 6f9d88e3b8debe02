"""The events of a task that waits for a slot of its concurrency key (issue 24).

Kept beside `schemas/events.py` (same rules: fields may be added with defaults
within a version, never removed or retyped). Registered in `schemas/registry.py`.
"""

from __future__ import annotations

from pydantic import Field

from schemas.events import EventData

_KEY = "The concurrency key the task counts against (by default its tenant)."


class TaskQueuedV1(EventData):
    """The task's concurrency key is at its limit: the task waits for a slot before its
    first step. The status is `queued` until `task.admitted.v1`."""

    event_type = "task.queued.v1"
    concurrency_key: str = Field(description=_KEY)
    position: int = Field(
        ge=1,
        description="Its place in the key's line when it was queued (1: next), by priority"
        " then arrival; across tenants sharing a key, weighted round robin decides.",
    )
    limit: int = Field(ge=1, description="How many tasks of the key may run at once.")
    running: int = Field(default=0, ge=0, description="How many held a slot then.")
    priority: int = Field(default=3, ge=1, le=5, description="The task's priority (1 first).")


class TaskAdmittedV1(EventData):
    """A slot of the key freed up and the queued task took it: it runs now."""

    event_type = "task.admitted.v1"
    concurrency_key: str = Field(description=_KEY)
    waited_seconds: float = Field(ge=0, description="How long it was queued.")
