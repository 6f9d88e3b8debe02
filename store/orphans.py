"""Orphans: the rows `POST /tasks` wrote for a task whose workflow never started.

`unstarted_tasks` lists the ids the API accepted whose first event is not recorded
yet (the trigger on `tasks` removes an id at its first event). One older than the
grace period whose workflow Temporal does not know (the worker asks: the store knows
nothing of Temporal) loses its owner, webhook and `unstarted_tasks` rows, unless the
id was claimed again since (`claimed_at` moved: a repeat of its request is starting it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg_pool import AsyncConnectionPool

from store.retention import PruneCounts, keep_interval

_UNSTARTED = """
SELECT u.task_id, u.claimed_at,
       EXISTS (SELECT 1 FROM tasks t WHERE t.task_id = u.task_id),
       EXISTS (SELECT 1 FROM pruned_tasks p WHERE p.task_id = u.task_id)
FROM unstarted_tasks u
WHERE u.claimed_at < now() - %(grace)s AND (u.claimed_at, u.task_id) > (%(at)s, %(id)s)
ORDER BY u.claimed_at, u.task_id
LIMIT %(limit)s
"""

# Only while the id is not claimed again (`claimed_at` unchanged): a repeat of the
# creating request re-claims it before it starts the workflow.
_FORGET_UNSTARTED = (
    "DELETE FROM unstarted_tasks WHERE task_id = %(id)s AND claimed_at = %(at)s RETURNING 1"
)

_DELETE_ORPHAN = (
    ("webhook_deliveries", "DELETE FROM webhook_deliveries WHERE task_id = %(id)s"),
    ("webhook_endpoints", "DELETE FROM webhook_endpoints WHERE task_id = %(id)s"),
    (
        "task_owners",
        "DELETE FROM task_owners WHERE task_id = %(id)s"
        " AND NOT EXISTS (SELECT 1 FROM tasks WHERE task_id = %(id)s)",
    ),
)


@dataclass(frozen=True, slots=True)
class UnstartedTask:
    task_id: str
    claimed_at: datetime
    recorded: bool  # the task has its first event: it started after all
    pruned: bool  # a tombstone: the id was re-claimed after its task was pruned


async def unstarted_tasks(
    pool: AsyncConnectionPool,
    *,
    grace_seconds: float,
    after: tuple[datetime, str],
    limit: int,
) -> list[UnstartedTask]:
    """Ids claimed more than `grace_seconds` ago with no event, oldest claim first,
    a page at a time after `after` (claimed_at, task_id)."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            _UNSTARTED,
            {"grace": keep_interval(grace_seconds), "at": after[0], "id": after[1], "limit": limit},
        )
        rows = await cursor.fetchall()
    return [UnstartedTask(str(t), at, bool(rec), bool(gone)) for t, at, rec, gone in rows]


async def forget_started(pool: AsyncConnectionPool, task: UnstartedTask) -> bool:
    """The task recorded its first event: it is no candidate any more."""
    async with pool.connection() as conn:
        cursor = await conn.execute(_FORGET_UNSTARTED, {"id": task.task_id, "at": task.claimed_at})
        return await cursor.fetchone() is not None


async def remove_orphan(pool: AsyncConnectionPool, task: UnstartedTask) -> PruneCounts:
    """Delete the owner and webhook rows of a task whose workflow never started; nothing
    when the id was claimed again meanwhile (a repeat of its request is starting it)."""
    counts = PruneCounts()
    params = {"id": task.task_id, "at": task.claimed_at}
    async with pool.connection() as conn, conn.transaction():
        cursor = await conn.execute(_FORGET_UNSTARTED, params)
        if await cursor.fetchone() is None:
            return counts
        counts.rows["unstarted_tasks"] += 1
        for table, statement in _DELETE_ORPHAN:
            cursor = await conn.execute(statement, params)
            counts.rows[table] += max(cursor.rowcount, 0)
    counts.task_ids.append(task.task_id)
    return counts
