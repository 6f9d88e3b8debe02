"""The one Postgres pool a process owns."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool


async def open_pool(conninfo: str, *, min_size: int = 1, max_size: int = 10) -> AsyncConnectionPool:
    pool = AsyncConnectionPool(
        conninfo, min_size=min_size, max_size=max_size, open=False, name="taskplane"
    )
    await pool.open(wait=True, timeout=30)
    return pool
