"""Retention of flow control's rows on a real Postgres (a database of this test's own):
debounced creations whose window closed long ago go, open windows and recent ones stay;
finished bulk operations go with their per-task outcomes, running and recent ones stay;
the pruner's round counts them by table (`taskplane_pruned_rows_total{table}`)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator

import pytest
from psycopg_pool import AsyncConnectionPool

from schemas.bulk import BulkStatus
from store import open_pool
from store.bulk import BulkStore
from store.debounced import DebouncedRequests, KeyedAnswer
from store.tenants import TaskOwners
from tests.own_database import own_database
from worker.pruner import Pruner, RetentionPolicy

DAY = 86_400.0


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    async with own_database(database_url, "flow_retention") as url:
        pool = await open_pool(url, min_size=1, max_size=4)
        try:
            yield pool
        finally:
            await pool.close()


async def _never_known(task_id: str) -> bool:
    return True  # no orphan is removed: this test is about flow control's rows


def _policy(batch_size: int = 100) -> RetentionPolicy:
    return dataclasses.replace(
        RetentionPolicy(batch_size=batch_size),
        debounced_requests_seconds=10 * DAY,
        bulk_operations_seconds=10 * DAY,
    )


async def _debounced(
    pool: AsyncConnectionPool, *, age_days: float, started_days_ago: float | None
) -> str:
    """A debounced creation `age_days` old; its task claimed (its window open) and, if
    `started_days_ago`, started then (its window closed: a `tasks` row)."""
    task_id = str(uuid.uuid4())
    key = f"key-{task_id}"
    assert await TaskOwners(pool).claim(task_id, "acme") == "acme"
    await DebouncedRequests(pool).remember("acme", key, KeyedAnswer(task_id, "hash"))
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE debounced_requests SET created_at = now() - make_interval(days => %s)"
            " WHERE idempotency_key = %s",
            (age_days, key),
        )
        if started_days_ago is not None:  # what the task's first event does
            await conn.execute("DELETE FROM unstarted_tasks WHERE task_id = %s", (task_id,))
            await conn.execute(
                "INSERT INTO tasks (task_id, task_type, status, owner, created_at)"
                " VALUES (%s, 'demo.pipeline', 'completed', 'acme',"
                " now() - make_interval(days => %s))",
                (task_id, started_days_ago),
            )
    return key


async def _bulk(pool: AsyncConnectionPool, *, tasks: int, finished_days_ago: float | None) -> str:
    """A bulk operation over `tasks` tasks, each with its outcome; finished then, or
    still running."""
    op_id = str(uuid.uuid4())
    store = BulkStore(pool)
    await store.create(
        op_id=op_id, tenant="acme", action="cancel", filter_json={"type": "x"}, request_hash="h"
    )
    async with pool.connection() as conn:
        for _ in range(tasks):
            await conn.execute(
                "INSERT INTO bulk_operation_tasks (bulk_id, task_id) VALUES (%s, %s)",
                (op_id, str(uuid.uuid4())),
            )
    for task_id in await store.pending(op_id, tasks):
        assert await store.record(op_id, task_id, "done", None)
    if finished_days_ago is None:
        await store.set_status(op_id, BulkStatus.RUNNING)
        return op_id
    await store.set_status(op_id, BulkStatus.COMPLETED)
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE bulk_operations SET finished_at = now() - make_interval(days => %s)"
            " WHERE id = %s",
            (finished_days_ago, op_id),
        )
    return op_id


async def _debounce_keys(pool: AsyncConnectionPool) -> set[str]:
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT idempotency_key FROM debounced_requests")
        return {str(row[0]) for row in await cursor.fetchall()}


async def _bulk_rows(pool: AsyncConnectionPool) -> dict[str, int]:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT o.id, count(t.task_id) FROM bulk_operations o"
            " LEFT JOIN bulk_operation_tasks t ON t.bulk_id = o.id GROUP BY o.id"
        )
        return {str(row[0]): int(row[1]) for row in await cursor.fetchall()}


async def test_debounced_requests_go_once_their_window_closed_past_retention(
    pool: AsyncConnectionPool,
) -> None:
    await _debounced(pool, age_days=40, started_days_ago=39)  # closed 39 days ago: goes
    gone_task = await _debounced(pool, age_days=40, started_days_ago=None)
    async with pool.connection() as conn:  # its task was pruned: no owner, no rows
        await conn.execute(
            "DELETE FROM unstarted_tasks u USING debounced_requests d"
            " WHERE d.task_id = u.task_id AND d.idempotency_key = %s",
            (gone_task,),
        )
    still_open = await _debounced(pool, age_days=40, started_days_ago=None)
    started_lately = await _debounced(pool, age_days=40, started_days_ago=2)
    recent = await _debounced(pool, age_days=1, started_days_ago=1)

    counts = await Pruner(pool, _never_known, _policy()).round()

    assert counts is not None
    assert counts.rows["debounced_requests"] == 2
    assert await _debounce_keys(pool) == {still_open, started_lately, recent}


async def test_finished_bulk_operations_go_with_their_outcomes(
    pool: AsyncConnectionPool,
) -> None:
    old = await _bulk(pool, tasks=25, finished_days_ago=40)
    old_empty = await _bulk(pool, tasks=0, finished_days_ago=40)
    running = await _bulk(pool, tasks=3, finished_days_ago=None)
    async with pool.connection() as conn:  # started long ago, not finished: stays
        await conn.execute(
            "UPDATE bulk_operations SET created_at = now() - interval '40 days' WHERE id = %s",
            (running,),
        )
    recent = await _bulk(pool, tasks=3, finished_days_ago=1)
    # A batch of 10 rows (1 * ROW_BATCH_FACTOR): the outcomes go over several statements.
    pruner = Pruner(pool, _never_known, _policy(batch_size=1))

    counts = await pruner.round()

    assert counts is not None
    assert counts.rows["bulk_operation_tasks"] == 25
    assert counts.rows["bulk_operations"] == 2
    left = await _bulk_rows(pool)
    assert left == {running: 3, recent: 3}
    assert old not in left
    assert old_empty not in left
    assert pruner.stats.rows["bulk_operations"] == 2  # what the metric reports
    # A second round finds nothing more.
    again = await pruner.round()
    assert again is not None
    assert again.rows["bulk_operation_tasks"] == again.rows["bulk_operations"] == 0
