"""The outbox: which recorded events still have to reach the broker.

`record_event` marks its own row published right after publishing; the relay
only takes rows older than a grace period, so it does not race a recording
activity that is about to mark its row.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

_CLAIM = """
SELECT o.id, o.task_id, o.seq, e.envelope
FROM outbox o JOIN events e ON e.event_id = o.event_id
WHERE o.published_at IS NULL AND o.created_at < now() - %s
ORDER BY o.id
LIMIT %s
FOR UPDATE OF o SKIP LOCKED
"""


@dataclass(frozen=True, slots=True)
class PendingEvent:
    outbox_id: int
    task_id: str
    sequence: int
    envelope_json: str


class OutboxBatch:
    """Rows claimed (locked) by one relay; mark them inside the same transaction."""

    def __init__(self, conn: AsyncConnection, events: list[PendingEvent]) -> None:
        self._conn = conn
        self.events = events

    async def mark_published(self, outbox_ids: list[int]) -> None:
        if outbox_ids:
            await self._conn.execute(
                "UPDATE outbox SET published_at = now(), attempts = attempts + 1"
                " WHERE id = ANY(%s)",
                (outbox_ids,),
            )

    async def mark_failed(self, outbox_id: int, error: str) -> None:
        await self._conn.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = %s WHERE id = %s",
            (error[:1000], outbox_id),
        )


class Outbox:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def mark_published(self, outbox_id: int) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE outbox SET published_at = now(), attempts = attempts + 1 WHERE id = %s",
                (outbox_id,),
            )

    @asynccontextmanager
    async def claim(self, *, grace: timedelta, limit: int) -> AsyncIterator[OutboxBatch]:
        """Lock up to `limit` pending rows older than `grace`, oldest first.

        `SKIP LOCKED` lets several workers relay at once without taking the
        same row; the lock (and the batch) ends when the block exits.
        """
        async with self._pool.connection() as conn, conn.transaction():
            cursor = await conn.execute(_CLAIM, (grace, limit))
            rows = await cursor.fetchall()
            events = [PendingEvent(int(i), str(t), int(s), str(env)) for i, t, s, env in rows]
            yield OutboxBatch(conn, events)
