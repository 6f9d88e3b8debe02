"""Task ownership: which tenant created a task (`task_owners`, migration 0004).

The API writes the row when it accepts a task, before the workflow starts, so
ownership is known before the store has any event of the task. It is the one
fact about a task the API itself establishes (besides a webhook subscription).
A task with no row (recorded before tenants existed, or started outside the API,
e.g. by an operator with the Temporal CLI) belongs to `DEFAULT_TENANT`.
"""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from store.autocommit import autocommit
from store.pool import read_twice

# The tenant of the open API (no keys configured) and of tasks with no owner row.
DEFAULT_TENANT = "default"

# Nothing for a pruned task's id; `unstarted_tasks` (re)claimed for the owner's own claim
# of a task with no event yet.
_CLAIM = """
WITH owner AS (
    INSERT INTO task_owners (task_id, tenant, concurrency_key)
    SELECT %(task_id)s, %(tenant)s, %(key)s
    WHERE NOT EXISTS (SELECT 1 FROM pruned_tasks WHERE task_id = %(task_id)s)
    ON CONFLICT (task_id) DO UPDATE SET tenant = task_owners.tenant
    RETURNING tenant
), unstarted AS (
    INSERT INTO unstarted_tasks (task_id)
    SELECT %(task_id)s FROM owner
    WHERE owner.tenant = %(tenant)s
      AND NOT EXISTS (SELECT 1 FROM tasks WHERE task_id = %(task_id)s)
    ON CONFLICT (task_id) DO UPDATE SET claimed_at = now()
)
SELECT tenant FROM owner
"""


class TaskOwners:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def claim(
        self, task_id: str, tenant: str, concurrency_key: str | None = None
    ) -> str | None:
        """Record `tenant` as the task's owner unless it has one; return the owner, or
        None when the id belongs to a pruned task (its tombstone is kept: retention).
        The row keeps the task's concurrency key too (default: the tenant; migration
        0021), which bulk operations filter on.

        Idempotent: a repeat by the same tenant (an Idempotency-Key replay) finds
        its own row. The caller compares the result with the tenant it asked for.
        Until the task's first event, the id is also in `unstarted_tasks`, claimed now:
        the orphan sweep (worker/pruner.py) removes an id whose start failed, never
        one claimed within its grace period.
        """
        # One statement, atomic on its own: one round trip (store/autocommit.py).
        async with self._pool.connection() as conn, autocommit(conn):
            params = {"task_id": task_id, "tenant": tenant, "key": concurrency_key or tenant}
            cursor = await conn.execute(_CLAIM, params)
            row = await cursor.fetchone()
        return None if row is None else str(row[0])

    async def owner_of(self, task_id: str) -> str:
        return await read_twice(lambda: self._owner_of(task_id))

    async def claimed(self, task_id: str) -> bool:
        """Whether the id has an owner row (a task made, or being made, under it)."""
        return await read_twice(lambda: self._claimed(task_id))

    async def _claimed(self, task_id: str) -> bool:
        async with self._pool.connection() as conn:
            cursor = await conn.execute("SELECT 1 FROM task_owners WHERE task_id = %s", (task_id,))
            return await cursor.fetchone() is not None

    async def _owner_of(self, task_id: str) -> str:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT tenant FROM task_owners WHERE task_id = %s", (task_id,)
            )
            row = await cursor.fetchone()
        return DEFAULT_TENANT if row is None else str(row[0])
