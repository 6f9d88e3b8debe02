"""The store's pool behind PgBouncer in transaction mode (Debian's pgbouncer 1.18).

In transaction mode consecutive transactions of one client may run on different server
connections, and one server connection serves many clients. psycopg prepares a query on
the server from its 5th run on a connection, under a name counted per client connection
(`_pg3_0`, …): with one server connection behind the pooler (`pool_size=1`), the second
client's first prepared statement meets the first client's of the same name, every time.
`prepared_statements=False` (TASKPLANE_DATABASE_POOLER=transaction) never prepares.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from store import EventStore, open_pool
from store.locks import try_exclusive
from tests.integration.test_store import event, new_task_id, progress
from tests.pgbouncer import running_pgbouncer

RUNS = 6  # past psycopg's default prepare_threshold (5)


@pytest.fixture
def bouncer_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    with running_pgbouncer(database_url, tmp_path / "pgbouncer.log", pool_size=1) as url:
        yield url


async def _run_twice_over(url: str, *, prepared_statements: bool) -> list[object]:
    """Two pools (two clients of the pooler), each running its own query RUNS times."""
    first = await open_pool(url, min_size=1, max_size=1, prepared_statements=prepared_statements)
    second = await open_pool(url, min_size=1, max_size=1, prepared_statements=prepared_statements)
    results: list[object] = []
    try:
        for pool, query in ((first, "SELECT %s::int + 1"), (second, "SELECT %s::text || 'x'")):
            for value in range(RUNS):
                async with pool.connection() as conn:
                    cursor = await conn.execute(query, (value,))
                    row = await cursor.fetchone()
                    results.append(row[0] if row else None)
    finally:
        await first.close()
        await second.close()
    return results


async def test_prepared_statements_clash_behind_transaction_pooling(bouncer_url: str) -> None:
    with pytest.raises(psycopg.errors.DuplicatePreparedStatement, match="_pg3_0"):
        await _run_twice_over(bouncer_url, prepared_statements=True)


async def test_pool_without_prepared_statements_works_behind_transaction_pooling(
    bouncer_url: str,
) -> None:
    results = await _run_twice_over(bouncer_url, prepared_statements=False)
    assert results == [*range(1, RUNS + 1), *(f"{value}x" for value in range(RUNS))]


async def test_exclusive_lock_is_released_with_its_transaction_behind_the_pooler(
    bouncer_url: str,
) -> None:
    """The lock lives in one transaction: held through the pooler, gone when it ends,
    never left behind on the server connection the pooler hands to the next client."""
    pool = await open_pool(bouncer_url, min_size=1, max_size=2, prepared_statements=False)
    try:
        async with try_exclusive(pool, 42_4242) as held:
            assert held
        for _ in range(3):  # any server connection, any client: the key is free again
            async with try_exclusive(pool, 42_4242) as again:
                assert again
    finally:
        await pool.close()


async def test_exclusive_lock_excludes_other_holders_and_the_prune_cli_lock(
    database_url: str,
) -> None:
    """Transaction-scoped, it still excludes a second try and `taskplane prune`'s session
    lock on the same key (both kinds of advisory lock on one key conflict)."""
    key = 42_4243
    pool = await open_pool(database_url, min_size=1, max_size=3)
    try:
        async with try_exclusive(pool, key) as held:
            assert held
            async with try_exclusive(pool, key) as second:
                assert not second
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as cli:
            await cli.execute("SELECT pg_advisory_lock(%s)", (key,))
            async with try_exclusive(pool, key) as while_cli_holds:
                assert not while_cli_holds
            await cli.execute("SELECT pg_advisory_unlock(%s)", (key,))
        async with try_exclusive(pool, key) as after:
            assert after
    finally:
        await pool.close()


async def test_a_batch_of_events_appends_in_one_pipelined_transaction_behind_the_pooler(
    bouncer_url: str,
) -> None:
    """`EventStore.append_many` pipelines BEGIN, its statements and COMMIT: through the
    pooler, on one server connection shared by two clients, each batch lands whole."""
    pools = [
        await open_pool(bouncer_url, min_size=1, max_size=1, prepared_statements=False)
        for _ in range(2)
    ]
    try:
        task_id = new_task_id()
        first, second = (EventStore(pool) for pool in pools)
        await first.append(event(task_id, "task.created.v1", {"task_type": "t", "input": {}}))
        for round_ in range(RUNS):
            for store in (first, second):
                batch = [progress(task_id, round_ * 10 + n) for n in range(3)]
                appended = await store.append_many(batch)
                assert [r.duplicate for r in await store.append_many(batch)] == [True] * 3
                assert [r.sequence for r in appended] == list(
                    range(appended[0].sequence, appended[0].sequence + 3)
                )
        assert await first.last_sequence(task_id) == 1 + RUNS * 2 * 3
    finally:
        for pool in pools:
            await pool.close()
