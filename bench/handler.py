"""A durable handler that does nothing: the lifecycle part's `TASKPLANE_EVENT_HANDLERS`
entry, so what a handler costs the store (its `processed_events` marks) is measured."""

from __future__ import annotations

from psycopg import AsyncConnection

from schemas import EventEnvelope
from worker.event_handler import EventHandler


async def _nothing(event: EventEnvelope, conn: AsyncConnection) -> None:
    return None


handler = EventHandler(name="bench-noop", handle=_nothing)
