"""The API's pool hands out no connection the server has closed (store/pool.py).

Its check reads the socket before it pays a round trip: a connection whose backend
was terminated (as a Postgres restart does to all of them) has the server's FATAL and
its end of file waiting, and is replaced before any caller sees it.
"""

from __future__ import annotations

import asyncio

import psycopg

from store.pool import open_pool
from tests.polling import until

# psycopg_pool backs off (1 s, 2 s, …) after each failed check: two connections keep it short.
SIZE = 2


async def test_a_checked_pool_hands_out_no_connection_the_server_closed(database_url: str) -> None:
    pool = await open_pool(database_url, min_size=SIZE, max_size=SIZE, timeout=20, check=True)
    try:
        pids: list[int] = []
        hold = asyncio.Event()

        async def use_one() -> None:
            async with pool.connection() as conn:
                pids.append(conn.info.backend_pid)
                await hold.wait()

        users = [asyncio.create_task(use_one()) for _ in range(SIZE)]
        await until(lambda: len(pids) == SIZE)
        hold.set()
        await asyncio.gather(*users)

        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as admin:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) pid", (pids,)
            )

            async def gone() -> bool:
                cursor = await admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)
                )
                row = await cursor.fetchone()
                return row is not None and row[0] == 0

            await until(gone)
        for _ in range(2 * SIZE):  # every pooled connection was terminated
            async with pool.connection() as conn:
                assert await (await conn.execute("SELECT 1")).fetchone() == (1,)
    finally:
        await pool.close()
