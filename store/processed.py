"""Which events a durable handler has already processed: at-least-once in, once out.

The broker may deliver an event twice (a publish retried by the outbox relay,
a consumer that died between its work and its acknowledgement, a message
claimed from a consumer that was only slow). `ProcessedEvents.first_time`
opens a transaction and inserts `(consumer, event_id)` into
`processed_events` first; when the row is already there the handler is
skipped. The handler's own database writes go into the same transaction, so
the mark and the effect commit together or not at all. Two deliveries running
at once serialise on the primary key: the second waits for the first to
commit, then finds the row and skips.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

_MARK = """
INSERT INTO processed_events (consumer, event_id) VALUES (%s, %s)
ON CONFLICT (consumer, event_id) DO NOTHING
RETURNING 1
"""


class ProcessedEvents:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @property
    def pool(self) -> AsyncConnectionPool:
        """The store's pool (a handler heals a trim gap from the events table through it)."""
        return self._pool

    @asynccontextmanager
    async def first_time(
        self, consumer: str, event_id: str
    ) -> AsyncIterator[AsyncConnection | None]:
        """A connection inside the marking transaction, or None when already processed.

        An exception inside the block rolls back the mark with the handler's
        writes, so the event counts as not processed and is retried.
        """
        async with self._pool.connection() as conn, conn.transaction():
            cursor = await conn.execute(_MARK, (consumer, event_id))
            yield conn if await cursor.fetchone() is not None else None

    async def was_processed(self, consumer: str, event_id: str) -> bool:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT 1 FROM processed_events WHERE consumer = %s AND event_id = %s",
                (consumer, event_id),
            )
            return await cursor.fetchone() is not None
