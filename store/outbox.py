"""The outbox: which recorded events still have to reach the broker.

A row is written with its event (`EventStore.append`) and has three ways out
of "pending":

- the recording activity publishes and calls `mark_published` (the usual way);
- the recording activity's publish fails and it calls `hand_over`: the row is
  the relay's from now on, without waiting for the grace period, and every
  listening relay is woken (`NOTIFY`);
- the recording activity died between commit and publish: the row stays
  untouched, and the relay takes it once it is older than the grace period.

The grace period keeps the relay from racing a recording activity that is
about to mark its own row (NOTES.md), so it must exceed the publish timeout.

`claim` is safe with any number of relays: a relay takes a task's rows only
while it holds that task's transaction-scoped advisory lock, so one relay at a
time publishes a task's backlog, oldest first; `SKIP LOCKED` skips a row the
recording activity is marking right now instead of waiting for it.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from store.autocommit import autocommit

# LISTEN/NOTIFY channel on which recorders wake the relays of every worker process.
OUTBOX_CHANNEL = "taskplane_outbox"
# First key of the relays' per-task advisory locks ("TPOB"), so they collide with no one else's.
RELAY_LOCK_CLASS = 0x54504F42

# The advisory lock is taken in the scan, in `id` order, until `limit` rows qualify: rows
# of a task another relay holds are skipped, and a task's rows come out oldest first.
# CASE fixes the evaluation order (the planner may reorder ANDed conditions): a task is
# locked only for a row this relay may take.
_CLAIM = """
WITH claimable AS MATERIALIZED (
    SELECT id FROM outbox
    WHERE published_at IS NULL
      AND CASE WHEN attempts > 0 OR created_at < now() - %(grace)s
               THEN pg_try_advisory_xact_lock(%(lock_class)s, hashtext(task_id))
               ELSE false END
    ORDER BY id
    LIMIT %(limit)s
)
SELECT o.id, o.task_id, o.seq, o.event_id, e.envelope
FROM outbox o
JOIN claimable USING (id)
JOIN events e ON e.event_id = o.event_id
WHERE o.published_at IS NULL
ORDER BY o.id
FOR UPDATE OF o SKIP LOCKED
"""

_HAND_OVER = """
WITH failed AS (
    UPDATE outbox SET attempts = attempts + 1, last_error = %(error)s
    WHERE id = %(id)s AND published_at IS NULL
)
SELECT pg_notify(%(channel)s, %(reason)s)
"""

_BACKLOG = """
SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8
FROM outbox WHERE published_at IS NULL
"""


class OutboxNotice(enum.StrEnum):
    """Why a recorder woke the relays (the NOTIFY payload)."""

    HANDED_OVER = "handed_over"  # a publish failed: a row waits for a relay now
    BROKER_BACK = "broker_back"  # a publish succeeded after failures: retry the backlog now


@dataclass(frozen=True, slots=True)
class PendingEvent:
    outbox_id: int
    task_id: str
    sequence: int
    event_id: str
    envelope_json: str


@dataclass(frozen=True, slots=True)
class OutboxBacklog:
    pending: int
    oldest_age_seconds: float


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
        async with self._pool.connection() as conn, autocommit(conn):  # one round trip
            await conn.execute(
                "UPDATE outbox SET published_at = now(), attempts = attempts + 1 WHERE id = %s",
                (outbox_id,),
            )

    async def mark_published_many(self, outbox_ids: list[int]) -> None:
        """Several rows published by this process's recorder (`PublishedMarks`), at once."""
        async with self._pool.connection() as conn, autocommit(conn):
            await conn.execute(
                "UPDATE outbox SET published_at = now(), attempts = attempts + 1"
                " WHERE id = ANY(%s)",
                (outbox_ids,),
            )

    async def hand_over(self, outbox_id: int, error: str) -> None:
        """The recorder could not publish: the relays may take the row at once; wake them."""
        async with self._pool.connection() as conn:
            await conn.execute(
                _HAND_OVER,
                {
                    "id": outbox_id,
                    "error": error[:1000],
                    "channel": OUTBOX_CHANNEL,
                    "reason": OutboxNotice.HANDED_OVER.value,
                },
            )

    async def notify(self, notice: OutboxNotice) -> None:
        async with self._pool.connection() as conn:
            await conn.execute("SELECT pg_notify(%s, %s)", (OUTBOX_CHANNEL, notice.value))

    async def backlog(self) -> OutboxBacklog:
        """How many rows are pending and how old the oldest is (for metrics)."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(_BACKLOG)
            row = await cursor.fetchone()
        return OutboxBacklog(0, 0.0) if row is None else OutboxBacklog(int(row[0]), float(row[1]))

    @asynccontextmanager
    async def claim(self, *, grace: timedelta, limit: int) -> AsyncIterator[OutboxBatch]:
        """Lock up to `limit` pending rows the relay may publish now, oldest first per task.

        Claimable: handed over by the recorder, or older than `grace`. The locks
        (rows and tasks) end when the block exits, with the transaction.
        """
        params = {"grace": grace, "limit": limit, "lock_class": RELAY_LOCK_CLASS}
        async with self._pool.connection() as conn, conn.transaction():
            cursor = await conn.execute(_CLAIM, params)
            rows = await cursor.fetchall()
            events = [
                PendingEvent(int(i), str(t), int(s), str(e), str(env)) for i, t, s, e, env in rows
            ]
            yield OutboxBatch(conn, events)
