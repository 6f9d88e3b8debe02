"""Task ownership: which tenant created a task (`task_owners`, migration 0004).

The API writes the row when it accepts a task, before the workflow starts, so
ownership is known before the store has any event of the task. It is the one
fact about a task the API itself establishes (besides a webhook subscription).
A task with no row (recorded before tenants existed, or started outside the API,
e.g. by an operator with the Temporal CLI) belongs to `DEFAULT_TENANT`.
"""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from store.pool import read_twice

# The tenant of the open API (no keys configured) and of tasks with no owner row.
DEFAULT_TENANT = "default"


class TaskOwners:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def claim(self, task_id: str, tenant: str) -> str:
        """Record `tenant` as the task's owner unless it has one; return the owner.

        Idempotent: a repeat by the same tenant (an Idempotency-Key replay) finds
        its own row. The caller compares the result with the tenant it asked for.
        """
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "INSERT INTO task_owners (task_id, tenant) VALUES (%s, %s)"
                " ON CONFLICT (task_id) DO UPDATE SET tenant = task_owners.tenant"
                " RETURNING tenant",
                (task_id, tenant),
            )
            row = await cursor.fetchone()
        assert row is not None  # RETURNING of an upsert always yields the row
        owner: str = row[0]
        return owner

    async def owner_of(self, task_id: str) -> str:
        return await read_twice(lambda: self._owner_of(task_id))

    async def _owner_of(self, task_id: str) -> str:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT tenant FROM task_owners WHERE task_id = %s", (task_id,)
            )
            row = await cursor.fetchone()
        return DEFAULT_TENANT if row is None else str(row[0])
