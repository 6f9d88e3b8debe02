"""Counts an operator watches, read from the task read model (worker metrics)."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool


async def tasks_by_status(pool: AsyncConnectionPool) -> dict[str, int]:
    """How many tasks the read model holds in each status (statuses with none are absent).

    A full count (an index-only scan of `tasks_status_newest_idx`): cheap at the
    scale of a refresh every few seconds, and exact, which a planner estimate is not.
    """
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT status, count(*) FROM tasks GROUP BY status")
        rows = await cursor.fetchall()
    return {str(status): int(count) for status, count in rows}
