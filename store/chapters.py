"""The reconciler's view of the read model: which tasks the store still thinks open."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from schemas.tasks import TERMINAL_STATUSES

_CLOSED = sorted(status.value for status in TERMINAL_STATUSES)

# Serialises reconcilers across workers: one round at a time, whoever gets it.
RECONCILE_LOCK_KEY = 0x7A5C_14EC


@dataclass(frozen=True, slots=True)
class TaskChapter:
    task_id: str
    status: str
    run_id: str | None

    @property
    def closed(self) -> bool:
        return self.status in _CLOSED


async def chapters_of(pool: AsyncConnectionPool, task_ids: list[str]) -> dict[str, TaskChapter]:
    """The read model's view of these tasks. A task with no event yet but an owner (the
    API wrote it before starting the workflow) is `pending`; a task this store has no
    trace of is left out: it is not this deployment's (another store may share the
    Temporal namespace), so nothing is recorded for it."""
    if not task_ids:
        return {}
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT o.task_id, COALESCE(t.status, 'pending'), t.run_id"
            " FROM task_owners o LEFT JOIN tasks t USING (task_id)"
            " WHERE o.task_id = ANY(%s)"
            " UNION ALL"
            " SELECT t.task_id, t.status, t.run_id FROM tasks t"
            " WHERE t.task_id = ANY(%s)"
            " AND NOT EXISTS (SELECT 1 FROM task_owners o WHERE o.task_id = t.task_id)",
            (task_ids, task_ids),
        )
        rows = await cursor.fetchall()
    return {row[0]: TaskChapter(row[0], row[1], row[2]) for row in rows}


async def mark_workflow_task_failing(pool: AsyncConnectionPool, task_id: str) -> bool:
    """Flag an open task whose workflow task keeps failing; False if it was flagged."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "UPDATE tasks SET workflow_task_failing_since = now()"
            " WHERE task_id = %s AND workflow_task_failing_since IS NULL AND status <> ALL(%s)",
            (task_id, _CLOSED),
        )
        return cursor.rowcount == 1


async def stale_open_tasks(
    pool: AsyncConnectionPool, *, stale_seconds: float, limit: int, after: str = ""
) -> list[TaskChapter]:
    """Open tasks untouched for `stale_seconds`, a page at a time by task id after `after`.

    A task parked in the store whose wake-up is not confirmed has no run to describe:
    admission's keeper owns it (worker/admission_keeper.py). Left out, 2,000 parked
    tasks neither cost the sweep 2,000 NOT_FOUND describes nor delay, page after
    page, the stuck runs it is there to find.
    """
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT task_id, status, run_id FROM tasks"
            " WHERE status <> ALL(%s) AND task_id > %s"
            " AND updated_at < now() - make_interval(secs => %s::float8)"
            " AND NOT EXISTS (SELECT 1 FROM admission_tickets a WHERE a.task_id = tasks.task_id"
            " AND a.parked IS NOT NULL AND NOT a.woken)"
            " ORDER BY task_id LIMIT %s",
            (_CLOSED, after, stale_seconds, limit),
        )
        rows = await cursor.fetchall()
    return [TaskChapter(row[0], row[1], row[2]) for row in rows]
