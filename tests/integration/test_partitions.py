"""The partitions of `events` on a real Postgres (a database of each test's own): retention
drops a partition once every task of it is pruned and never one holding an open task;
an event with no partition of its range is recorded (default partition) and moved when
the partition is made; duplicates are refused; the DDL gives up instead of holding up
recordings."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg import pq
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool

from cli.prune import prune
from schemas import EventEnvelope
from store import EventStore, open_pool
from store.partitions import Partition, PartitionPolicy, _drop, drop_empty, make_ahead, partitions
from tests.own_database import own_database
from worker.pruner import Pruner, RetentionPolicy

DAY = timedelta(days=1)
POLICY = PartitionPolicy(
    interval_seconds=86_400.0, ahead_seconds=86_400.0, lock_timeout_seconds=0.2
)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    async with own_database(database_url, "partitions") as url:
        pool = await open_pool(url, min_size=1, max_size=6)
        try:
            yield pool
        finally:
            await pool.close()


def _event(task_id: str, kind: str, when: datetime, **data: Any) -> EventEnvelope:
    return EventEnvelope(id=str(uuid.uuid4()), type=kind, subject=task_id, time=when, data=data)


async def _task(pool: AsyncConnectionPool, when: datetime, *, closed: bool) -> str:
    """A task created (and closed, if so) at `when`: its events in `when`'s partition."""
    task_id, store = str(uuid.uuid4()), EventStore(pool)
    await store.append(_event(task_id, "task.created.v1", when, task_type="t", input={}))
    await store.append(_event(task_id, "task.step.started.v1", when, index=1, name="s"))
    if closed:
        await store.append(_event(task_id, "task.completed.v1", when, result={}))
    return task_id


async def _one(pool: AsyncConnectionPool, query: str, *args: Any) -> Any:
    async with pool.connection() as conn:
        cursor = await conn.execute(query, args or None)
        row = await cursor.fetchone()
    assert row is not None
    return row[0]


async def _where(pool: AsyncConnectionPool, task_id: str) -> set[str]:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT DISTINCT tableoid::regclass::text FROM events WHERE task_id = %s", (task_id,)
        )
        return {str(row[0]) for row in await cursor.fetchall()}


async def _make(pool: AsyncConnectionPool, day: datetime) -> Partition:
    """The partition of `day` (and no more: ahead by a second)."""
    async with pool.connection() as conn:
        made = await make_ahead(conn, PartitionPolicy(ahead_seconds=1.0), now=day)
    (partition,) = made.made
    return partition


async def test_retention_drops_a_partition_once_its_tasks_are_pruned_never_with_an_open_one(
    pool: AsyncConnectionPool,
) -> None:
    now = datetime.now(UTC)
    quiet, busy = await _make(pool, now - 50 * DAY), await _make(pool, now - 45 * DAY)
    gone = [await _task(pool, quiet.lower + timedelta(hours=h), closed=True) for h in (1, 2)]
    closed = await _task(pool, busy.lower + timedelta(hours=1), closed=True)
    open_task = await _task(pool, busy.lower + timedelta(hours=2), closed=False)
    assert await _where(pool, gone[0]) == {quiet.name}
    assert await _where(pool, open_task) == {busy.name}

    pruner = Pruner(pool, _no_orphans, RetentionPolicy(closed_tasks_seconds=30 * 86_400.0))
    pruner.partitions = POLICY
    counts = await pruner.round()  # prunes the closed tasks (their events stay for the drop)
    assert counts is not None
    assert sorted(counts.task_ids) == sorted([*gone, closed])
    assert counts.rows["events"] == 0
    assert await _one(pool, "SELECT count(*) FROM events WHERE task_id = %s", closed) == 3
    assert await EventStore(pool).history(closed) == []  # unread: the task is gone

    await pruner.round()  # drops the quiet partition; the busy one holds an open task
    names = {p.name for p in await _partitions(pool)}
    assert quiet.name not in names
    assert busy.name in names
    assert pruner.stats.partitions_dropped == 1
    assert pruner.stats.partition_bytes_dropped > 0
    assert pruner.stats.partitions_overdue == 1
    assert [e.sequence for e in await EventStore(pool).history(open_task)] == [1, 2]

    # The open task closes (long ago, for the test): the next rounds prune it, then drop.
    await EventStore(pool).append(_event(open_task, "task.completed.v1", busy.lower, result={}))
    await pruner.round()
    await pruner.round()
    assert busy.name not in {p.name for p in await _partitions(pool)}
    assert await _one(pool, "SELECT count(*) FROM events WHERE task_id = %s", closed) == 0
    assert pruner.stats.partitions_dropped == 2
    assert pruner.stats.partitions_overdue == 0


async def _no_orphans(task_id: str) -> bool:
    raise AssertionError(f"asked Temporal about {task_id}: no orphan here")


async def _partitions(pool: AsyncConnectionPool) -> list[Partition]:
    async with pool.connection() as conn:
        return await partitions(conn)


async def test_an_event_with_no_partition_is_recorded_and_moved_when_its_partition_is_made(
    pool: AsyncConnectionPool,
) -> None:
    later = datetime.now(UTC) + 40 * DAY  # beyond every partition made ahead of time
    task_id = await _task(pool, later, closed=False)
    assert await _where(pool, task_id) == {"events_default"}
    partition = await _make(pool, later)
    assert await _where(pool, task_id) == {partition.name}
    store = EventStore(pool)
    step = _event(task_id, "task.step.completed.v1", later, index=1, name="s")
    assert (await store.append(step)).sequence == 3
    assert [e.sequence for e in await store.history(task_id)] == [1, 2, 3]
    assert await _where(pool, task_id) == {partition.name}


async def test_duplicates_are_refused_even_racing_each_other(pool: AsyncConnectionPool) -> None:
    now = datetime.now(UTC)
    task_id = await _task(pool, now, closed=False)
    store = EventStore(pool)
    step = _event(task_id, "task.step.progress.v1", now, index=1, name="s", percent=50.0)
    results = await asyncio.gather(*(store.append(step) for _ in range(4)))
    assert sorted(r.duplicate for r in results) == [False, True, True, True]
    assert {r.sequence for r in results} == {3}
    assert await _one(pool, "SELECT count(*) FROM events WHERE event_id = %s", step.id) == 1
    assert await _one(pool, "SELECT count(*) FROM outbox WHERE event_id = %s", step.id) == 1


async def test_a_partition_is_not_dropped_when_a_task_of_its_range_appears(
    pool: AsyncConnectionPool,
) -> None:
    """The check is repeated under the DETACH's lock: a task recorded between the first
    check and the drop keeps its partition (here: the task exists before `_drop`)."""
    partition = await _make(pool, datetime.now(UTC) - 50 * DAY)
    task_id = await _task(pool, partition.lower, closed=True)
    async with pool.connection() as conn:
        assert await _drop(conn, partition, POLICY) is None
    assert partition.name in {p.name for p in await _partitions(pool)}
    assert await _where(pool, task_id) == {partition.name}


async def test_partition_ddl_gives_up_instead_of_holding_up_recordings(
    pool: AsyncConnectionPool,
) -> None:
    """A transaction holding `events` (a recording, a long read) makes the DETACH wait:
    it waits `lock_timeout` at most, is counted, and the next round drops the partition."""
    now = datetime.now(UTC)
    partition = await _make(pool, now - 50 * DAY)
    async with pool.connection() as holder, holder.transaction():
        await holder.execute("SELECT count(*) FROM events")  # ACCESS SHARE until commit
        async with pool.connection() as conn:
            blocked = await drop_empty(conn, POLICY, overdue_before=now - 40 * DAY, now=now)
        assert blocked.lock_timeouts == 1
        assert blocked.dropped == []
        # Recording goes on meanwhile.
        await _task(pool, now, closed=False)
    async with pool.connection() as conn:
        done = await drop_empty(conn, POLICY, overdue_before=now - 40 * DAY, now=now)
        # Each DDL committed on its own: nothing left open that would hold a lock.
        assert conn.info.transaction_status == pq.TransactionStatus.IDLE
    assert [d.name for d in done.dropped] == [partition.name]


async def test_taskplane_prune_drops_the_partitions_it_empties(
    pool: AsyncConnectionPool, database_url: str
) -> None:
    partition = await _make(pool, datetime.now(UTC) - 50 * DAY)
    await _task(pool, partition.lower, closed=True)
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT current_database()")
        row = await cursor.fetchone()
    assert row is not None
    url = make_conninfo(database_url, dbname=row[0])
    policy = RetentionPolicy(closed_tasks_seconds=30 * 86_400.0)
    would = await prune(url, policy, dry_run=True)
    assert (would.tasks, would.rows["event_partitions"]) == (1, 1)
    done = await prune(url, policy, dry_run=False)
    assert (done.tasks, done.rows["event_partitions"]) == (1, 1)
    assert partition.name not in {p.name for p in await _partitions(pool)}


async def test_the_pruning_round_makes_the_missing_partitions_ahead(
    pool: AsyncConnectionPool,
) -> None:
    ahead = PartitionPolicy(ahead_seconds=3 * 86_400.0)
    tomorrow = datetime.now(UTC) + DAY
    async with pool.connection() as conn:
        (gone,) = [p for p in await partitions(conn) if p.lower <= tomorrow < p.upper]
        await conn.execute(f"DROP TABLE {gone.name}")  # as if never made
    pruner = Pruner(pool, _no_orphans, RetentionPolicy())
    pruner.partitions = ahead
    await pruner.round()
    assert gone.name in {p.name for p in await _partitions(pool)}
    assert pruner.stats.partitions_made == 1
    assert pruner.stats.partitions is not None
    assert pruner.stats.partitions >= 4


async def test_recordings_go_on_while_partitions_are_made_and_dropped(
    pool: AsyncConnectionPool,
) -> None:
    """Appends racing partition DDL: every one is recorded, sequences dense."""
    now, store = datetime.now(UTC), EventStore(pool)
    task_ids = [await _task(pool, now, closed=False) for _ in range(4)]

    async def record(task_id: str) -> None:
        for i in range(25):
            step = _event(task_id, "task.step.progress.v1", now, index=1, name="s", percent=i)
            await store.append(step)

    async def churn() -> None:
        for days in range(10, 20):  # make far-future partitions and drop them again
            later = now + days * DAY
            async with pool.connection() as conn:
                await make_ahead(conn, PartitionPolicy(ahead_seconds=1.0), now=later)
                await drop_empty(conn, POLICY, overdue_before=now, now=later + DAY)

    await asyncio.gather(churn(), *(record(t) for t in task_ids))
    for task_id in task_ids:
        assert [e.sequence for e in await store.history(task_id)] == list(range(1, 28))
