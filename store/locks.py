"""One-at-a-time across processes: a Postgres session advisory lock, tried, never waited for.

The reconciler and the pruner run in every worker, and one round of each at a time is
enough: a worker whose try fails skips its round (the holder does the work).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from psycopg_pool import AsyncConnectionPool


@asynccontextmanager
async def try_exclusive(pool: AsyncConnectionPool, key: int) -> AsyncIterator[bool]:
    """Yield whether this process holds `key` now; released when the block ends."""
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", (key,))
        row = await cursor.fetchone()
        held = bool(row and row[0])
        try:
            yield held
        finally:
            if held:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
