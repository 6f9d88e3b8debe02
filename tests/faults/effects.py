"""A durable handler that records every event it handles, for the fault tests' checker.

Each handled event adds a row `(handler, event_id, task_id)` to `fault_handler_effects`
through the runner's connection, so the row commits with the processed mark: a
second row for one event would be a second effect, which the invariant checker
reports. Worker processes load `handler` through `TASKPLANE_EVENT_HANDLERS`
(its group from `TASKPLANE_TEST_FAULT_GROUP`); in-process tests call `effects_handler`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from schemas import EventEnvelope
from worker.event_handler import EventHandler

TABLE = "fault_handler_effects"


async def create_table(pool: AsyncConnectionPool) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY,"
            " handler text NOT NULL, event_id text NOT NULL, task_id text NOT NULL)"
        )


def effects_handler(group: str) -> EventHandler:
    async def record(event: EventEnvelope, conn: AsyncConnection) -> None:
        await conn.execute(
            f"INSERT INTO {TABLE} (handler, event_id, task_id) VALUES (%s, %s, %s)",
            (group, event.id, event.subject),
        )

    return EventHandler(name=group, handle=record)


async def handled(pool: AsyncConnectionPool, group: str, task_ids: Iterable[str]) -> list[str]:
    """The event ids `group` handled for these tasks, one per effect, in commit order."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            f"SELECT event_id FROM {TABLE} WHERE handler = %s AND task_id = ANY(%s) ORDER BY id",
            (group, list(task_ids)),
        )
        return [str(row[0]) for row in await cursor.fetchall()]


handler = effects_handler(os.environ.get("TASKPLANE_TEST_FAULT_GROUP", "fault-effects"))
