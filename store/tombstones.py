"""Tombstones of pruned tasks (`pruned_tasks`, migration 0007).

Pruning a task (store/retention.py) deletes its rows and leaves its id here, in the
same transaction. The API answers 404 for an id with a tombstone instead of asking
Temporal (whose retention is its own, so it may still describe the workflow), and the
store refuses any event of it: the trigger on `tasks` raises `PRUNED_SQLSTATE`, which
`store.events` turns into `TaskPrunedError`.
"""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from store.pool import read_twice

# Raised by the `tasks_row_made` trigger for a row of a pruned task ("Gone").
PRUNED_SQLSTATE = "TP410"


async def was_pruned(pool: AsyncConnectionPool, task_id: str) -> bool:
    return await read_twice(lambda: _was_pruned(pool, task_id))


async def _was_pruned(pool: AsyncConnectionPool, task_id: str) -> bool:
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT 1 FROM pruned_tasks WHERE task_id = %s", (task_id,))
        return await cursor.fetchone() is not None
