"""One-at-a-time across processes: a Postgres advisory lock, tried, never waited for.

The reconciler and the pruner run in every worker, and one round of each at a time is
enough: a worker whose try fails skips its round (the holder does the work).

The lock is transaction-scoped (`pg_try_advisory_xact_lock` in a transaction held open
for the block): Postgres releases it when that transaction ends, however it ends, and
the whole of it runs on one server connection even behind PgBouncer in transaction mode
(a session lock there could be taken on one server connection and released on another,
or left behind on a connection the pooler hands to someone else). It still excludes
`taskplane prune`, which waits for the same key as a session lock: the two kinds of
advisory lock on one key conflict.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from psycopg_pool import AsyncConnectionPool


@asynccontextmanager
async def try_exclusive(pool: AsyncConnectionPool, key: int) -> AsyncIterator[bool]:
    """Yield whether this process holds `key` now; released when the block ends."""
    async with pool.connection() as conn, conn.transaction():
        cursor = await conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (key,))
        row = await cursor.fetchone()
        yield bool(row and row[0])
