"""Events by the time they reached the broker: what a durable handler heals a trim gap from.

A consumer group that falls behind the Redis stream's cap loses the trimmed
entries unread (`broker.durable.TrimGap`). Every one of them is an event the
store has, with an outbox row: the recorder or the relay sets `published_at`
after its XADD succeeded, so an entry added to the stream after time T belongs
to an outbox row published at or after T (less the skew between the Redis and
Postgres clocks, and the relay's batch: `published_at` is its transaction's
start), or to one not marked yet (its publisher is still at it, or died and the
relay will publish it again).

`since(lower)` is a snapshot of those rows, oldest outbox id first — which is
sequence order within each task — up to the newest row when it was taken. It
returns more than the gap held (everything published since `lower`, including
what is still in the stream); the handler's `processed_events` mark makes the
second delivery of those a no-op.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from functools import partial

from psycopg_pool import AsyncConnectionPool

from store.pool import read_twice

PAGE_SIZE = 500

_START = """
SELECT LEAST(
    (SELECT min(id) FROM outbox WHERE published_at >= %(lower)s),
    (SELECT min(id) FROM outbox WHERE published_at IS NULL)
), (SELECT max(id) FROM outbox)
"""

_PAGE = """
SELECT o.id, e.envelope
FROM outbox o JOIN events e ON e.event_id = o.event_id
WHERE o.id >= %(start)s AND o.id <= %(last)s
  AND (o.published_at >= %(lower)s OR o.published_at IS NULL)
ORDER BY o.id
LIMIT %(limit)s
"""


class PublishedEvents:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def since(self, lower: datetime) -> AsyncIterator[str]:
        """The envelope JSON of every event published at or after `lower`, or not yet
        marked published, in outbox order, up to the newest row now; read in pages."""
        start, last = await read_twice(partial(self._bounds, lower))
        if start is None or last is None:
            return
        while start <= last:
            page = await read_twice(partial(self._page, lower, start, last))
            for _, envelope in page:
                yield envelope
            if len(page) < PAGE_SIZE:
                return
            start = page[-1][0] + 1

    async def _bounds(self, lower: datetime) -> tuple[int | None, int | None]:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(_START, {"lower": lower})
            row = await cursor.fetchone()
        if row is None:
            return None, None
        return (None if row[0] is None else int(row[0])), (None if row[1] is None else int(row[1]))

    async def _page(self, lower: datetime, start: int, last: int) -> list[tuple[int, str]]:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                _PAGE, {"lower": lower, "start": start, "last": last, "limit": PAGE_SIZE}
            )
            rows = await cursor.fetchall()
        return [(int(outbox_id), str(envelope)) for outbox_id, envelope in rows]
