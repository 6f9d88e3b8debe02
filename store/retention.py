"""Retention: what the pruner (worker/pruner.py) and `taskplane prune` delete, in SQL.

A closed task past its retention goes whole, in one short transaction with the
other tasks of its batch: its `tasks` row, outbox rows, the processed marks of its
events, its webhook endpoint and deliveries, its owner row; its id goes to
`pruned_tasks` (a tombstone, store/tombstones.py). Open tasks are never selected,
whatever their age. Its events are deleted only when they are in `events_default`;
in a partition of their own they stay, unread (the task row is gone), until the
partition holds no task any more and is dropped whole (store/partitions.py).

Never blocking the recording path: the batch locks the rows of the tasks it
prunes `FOR UPDATE SKIP LOCKED`, so a task whose row a recorder holds right now
is left for the next round, and a recorder never waits on the pruner except for
an event of a task the pruner already holds — a closed task, which takes no event
but a reset's. That one waits for the batch to commit and is then refused (the
`tasks_row_made` trigger finds the tombstone): nothing recorded after pruning
brings back half a task.

Orphans (ids accepted whose workflow never started) are store/orphans.py's.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from schemas.tasks import TERMINAL_STATUSES

CLOSED = sorted(status.value for status in TERMINAL_STATUSES)

# Serialises pruners across workers and `taskplane prune`: one at a time.
PRUNE_LOCK_KEY = 0x7A5C_D0C5

# Every table the pruner deletes from, in the order it does (references first).
TABLES = (
    "processed_events",
    "webhook_deliveries",
    "webhook_endpoints",
    "outbox",
    "events",
    "task_owners",
    "unstarted_tasks",
    "tasks",
    "pruned_tasks",
)

# Closed, and closed before the cutoff (`created_at` too: it lets the status index
# narrow the scan, and a task closes after it is created).
_EXPIRED = """
SELECT task_id FROM tasks
WHERE status = ANY(%(closed)s)
  AND created_at < now() - %(keep)s AND updated_at < now() - %(keep)s
"""

# Oldest first, through `tasks_newest_idx`: the scan stops at `limit` expired tasks, and
# when none is expired it reads only the (few) tasks created before the cutoff and still
# open or closed since. No index on `updated_at`: every event sets it, and an index on
# it would cost the recording path its HOT updates.
_LOCK_EXPIRED = _EXPIRED + " ORDER BY created_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED"

# The durable consumers with marks, read off the primary key one name at a time (a loose
# index scan: as many probes as consumers, whatever the table's size), so the marks of
# an event are found by (consumer, event_id) through that key.
_CONSUMERS = """
WITH RECURSIVE consumers (name) AS (
    SELECT min(consumer) FROM processed_events
    UNION ALL
    SELECT (SELECT min(consumer) FROM processed_events WHERE consumer > c.name)
    FROM consumers c WHERE c.name IS NOT NULL
)
"""

# (table, delete) for a batch of tasks `%(ids)s`, their events `%(event_ids)s` and the
# consumers `%(consumers)s`, in `TABLES` order. Plain `= ANY` lists, so each is an index
# lookup whatever the planner thinks of a join (it hashed whole tables for those).
_DELETE_TASKS = (
    (
        "processed_events",
        "DELETE FROM processed_events"
        " WHERE consumer = ANY(%(consumers)s) AND event_id = ANY(%(event_ids)s)",
    ),
    ("webhook_deliveries", "DELETE FROM webhook_deliveries WHERE task_id = ANY(%(ids)s)"),
    ("webhook_endpoints", "DELETE FROM webhook_endpoints WHERE task_id = ANY(%(ids)s)"),
    ("outbox", "DELETE FROM outbox WHERE event_id = ANY(%(event_ids)s)"),
    # Only the default partition's: a real partition goes whole (store/partitions.py).
    ("events", "DELETE FROM events_default WHERE task_id = ANY(%(ids)s)"),
    ("task_owners", "DELETE FROM task_owners WHERE task_id = ANY(%(ids)s)"),
    ("unstarted_tasks", "DELETE FROM unstarted_tasks WHERE task_id = ANY(%(ids)s)"),
    ("tasks", "DELETE FROM tasks WHERE task_id = ANY(%(ids)s)"),
)

# The same rows, counted for every expired task at once (`taskplane prune --dry-run`).
_COUNT_EXPIRED = (
    _CONSUMERS
    + """, expired AS MATERIALIZED ("""
    + _EXPIRED
    + """)
SELECT
    (SELECT count(*) FROM processed_events p JOIN consumers c ON p.consumer = c.name
       JOIN events e ON p.event_id = e.event_id JOIN expired x ON e.task_id = x.task_id),
    (SELECT count(*) FROM webhook_deliveries d JOIN expired x USING (task_id)),
    (SELECT count(*) FROM webhook_endpoints w JOIN expired x USING (task_id)),
    (SELECT count(*) FROM outbox o
       WHERE o.published_at < now() - %(outbox_keep)s
          OR o.task_id IN (SELECT task_id FROM expired)),
    (SELECT count(*) FROM events_default e JOIN expired x USING (task_id)),
    (SELECT count(*) FROM task_owners o JOIN expired x USING (task_id)),
    (SELECT count(*) FROM unstarted_tasks u JOIN expired x USING (task_id)),
    (SELECT count(*) FROM expired),
    (SELECT count(*) FROM pruned_tasks WHERE pruned_at < now() - %(tombstone_keep)s)
"""
)

# `= ANY(ARRAY(…))`: the ids are looked up by key (`IN (…)` made the planner hash-join
# a scan of the whole table).
_PUBLISHED_OUTBOX = """
DELETE FROM outbox WHERE id = ANY(ARRAY(
    SELECT id FROM outbox WHERE published_at < now() - %(keep)s
    ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
))
"""

_EXPIRED_TOMBSTONES = """
DELETE FROM pruned_tasks WHERE task_id = ANY(ARRAY(
    SELECT task_id FROM pruned_tasks WHERE pruned_at < now() - %(keep)s
    ORDER BY pruned_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
))
"""


@dataclass
class PruneCounts:
    """Rows deleted (or, for a dry run, that would be) by table; the tasks pruned."""

    rows: Counter[str] = field(default_factory=Counter)
    task_ids: list[str] = field(default_factory=list)

    def add(self, other: PruneCounts) -> None:
        self.rows.update(other.rows)
        self.task_ids.extend(other.task_ids)

    @property
    def tasks(self) -> int:
        return self.rows["tasks"]

    def by_table(self) -> dict[str, int]:
        """Every table, in `TABLES` order, zeros included."""
        return {table: self.rows[table] for table in TABLES}


def keep_interval(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


async def prune_closed_batch(
    conn: AsyncConnection, *, keep_seconds: float, limit: int
) -> PruneCounts:
    """Prune up to `limit` tasks closed more than `keep_seconds` ago, inside the caller's
    transaction (commit it soon: it holds their rows). Tasks whose row another
    transaction holds are skipped."""
    counts = PruneCounts()
    cursor = await conn.execute(
        _LOCK_EXPIRED, {"closed": CLOSED, "keep": keep_interval(keep_seconds), "limit": limit}
    )
    ids = [str(row[0]) for row in await cursor.fetchall()]
    if not ids:
        return counts
    await conn.execute(
        "INSERT INTO pruned_tasks (task_id) SELECT unnest(%(ids)s::text[])"
        " ON CONFLICT (task_id) DO NOTHING",
        {"ids": ids},
    )
    # A webhook handler enqueueing deliveries holds its endpoint's row: wait for it, so
    # its rows are deleted with the others (the statements below see them committed).
    await conn.execute(
        "SELECT 1 FROM webhook_endpoints WHERE task_id = ANY(%(ids)s) ORDER BY task_id FOR UPDATE",
        {"ids": ids},
    )
    # No event can join them: a recorder needs the rows this transaction holds.
    cursor = await conn.execute("SELECT event_id FROM events WHERE task_id = ANY(%s)", (ids,))
    event_ids = [str(row[0]) for row in await cursor.fetchall()]
    cursor = await conn.execute(_CONSUMERS + "SELECT name FROM consumers WHERE name IS NOT NULL")
    consumers = [str(row[0]) for row in await cursor.fetchall()]
    params = {"ids": ids, "event_ids": event_ids, "consumers": consumers}
    for table, statement in _DELETE_TASKS:
        cursor = await conn.execute(statement, params)
        counts.rows[table] += max(cursor.rowcount, 0)
    counts.task_ids = ids
    return counts


async def prune_published_outbox(
    pool: AsyncConnectionPool, *, keep_seconds: float, limit: int
) -> int:
    """Delete up to `limit` outbox rows published more than `keep_seconds` ago."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            _PUBLISHED_OUTBOX, {"keep": keep_interval(keep_seconds), "limit": limit}
        )
        return max(cursor.rowcount, 0)


async def expire_tombstones(pool: AsyncConnectionPool, *, keep_seconds: float, limit: int) -> int:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            _EXPIRED_TOMBSTONES, {"keep": keep_interval(keep_seconds), "limit": limit}
        )
        return max(cursor.rowcount, 0)


async def count_expired(
    pool: AsyncConnectionPool,
    *,
    keep_seconds: float,
    outbox_keep_seconds: float,
    tombstone_keep_seconds: float,
) -> PruneCounts:
    """What pruning with these retentions would delete now, by table (a dry run)."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            _COUNT_EXPIRED,
            {
                "closed": CLOSED,
                "keep": keep_interval(keep_seconds),
                "outbox_keep": keep_interval(outbox_keep_seconds),
                "tombstone_keep": keep_interval(tombstone_keep_seconds),
            },
        )
        row = await cursor.fetchone()
    assert row is not None  # one row of subquery counts
    return PruneCounts(rows=Counter(dict(zip(TABLES, (int(n) for n in row), strict=True))))
