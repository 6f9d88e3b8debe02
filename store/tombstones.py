"""Tombstones of pruned tasks (`pruned_tasks`, migration 0008).

Pruning a task (store/retention.py) deletes its rows and leaves its id here, in the
same transaction. The API answers 404 for an id with a tombstone instead of asking
Temporal (whose retention is its own, so it may still describe the workflow): it reads
the task and its tombstone in one statement (`TaskReader.get_or_pruned`). The store
refuses any event of it: the trigger on `tasks` raises `PRUNED_SQLSTATE`, which
`store.events` turns into `TaskPrunedError`.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

# Raised by the `tasks_row_made` trigger for a row of a pruned task ("Gone").
PRUNED_SQLSTATE = "TP410"


async def is_pruned(conn: AsyncConnection[Any], task_id: str) -> bool:
    cursor = await conn.execute("SELECT 1 FROM pruned_tasks WHERE task_id = %s", (task_id,))
    return await cursor.fetchone() is not None
