"""A durable handler for the worker-process tests, loaded through TASKPLANE_EVENT_HANDLERS.

It writes one row per handled event into the table TASKPLANE_TEST_EFFECT_TABLE names,
through the connection the runner gives it: the row commits with the processed mark.
"""

from __future__ import annotations

import os

from psycopg import AsyncConnection, sql

from schemas import EventEnvelope
from worker.event_handler import EventHandler

TABLE = os.environ.get("TASKPLANE_TEST_EFFECT_TABLE", "test_handler_effects")


async def record_effect(event: EventEnvelope, conn: AsyncConnection) -> None:
    await conn.execute(
        sql.SQL("INSERT INTO {} (event_id, task_id) VALUES (%s, %s)").format(sql.Identifier(TABLE)),
        (event.id, event.subject),
    )


handler = EventHandler(
    name=os.environ.get("TASKPLANE_TEST_EFFECT_GROUP", "test-effects"), handle=record_effect
)
