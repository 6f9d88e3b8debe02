"""`EventStore.append_many` on a real Postgres: one transaction per batch, all or none,
in order, with every guarantee of a single append (dedupe, dense sequences, outbox)."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from store import EventStore
from store.budget import EventBudget, EventBudgetExceededError
from store.events import ChapterClosedError
from tests.integration.test_store import count, event, new_task_id, progress
from tests.polling import until

CREATED = {"task_type": "t", "input": {}}
_WAITING_ON_LOCKS = (
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s"
)
_APPENDS_LIKE = "%INSERT INTO tasks AS t%"


async def test_a_batch_keeps_its_order_and_no_other_event_lands_inside_it(
    pool: AsyncConnectionPool,
) -> None:
    store = EventStore(pool)
    task_id = new_task_id()
    await store.append(event(task_id, "task.created.v1", CREATED))
    batches = [[progress(task_id, b * 10 + i) for i in range(4)] for b in range(6)]
    singles = [progress(task_id, 100 + i) for i in range(10)]
    results = await asyncio.gather(
        *(store.append_many(batch) for batch in batches), *(store.append(s) for s in singles)
    )
    for batch, appended in zip(batches, results[: len(batches)], strict=True):
        assert isinstance(appended, list)
        sequences = [r.sequence for r in appended]
        assert sequences == list(range(sequences[0], sequences[0] + len(batch)))
        assert not any(r.duplicate for r in appended)
    history = await store.history(task_id, limit=1000)
    assert [e.sequence for e in history] == list(range(1, 1 + 1 + 6 * 4 + 10))
    assert await count(pool, "SELECT count(*) FROM outbox WHERE task_id = %s", task_id) == 35


async def test_a_batch_recorded_again_is_all_duplicates_and_burns_no_sequence(
    pool: AsyncConnectionPool,
) -> None:
    store = EventStore(pool)
    task_id = new_task_id()
    await store.append(event(task_id, "task.created.v1", CREATED))
    batch = [progress(task_id, p) for p in (10, 20, 30)]
    first = await store.append_many(batch)
    again = await store.append_many(batch)
    assert [r.sequence for r in first] == [2, 3, 4]
    assert [(r.sequence, r.duplicate) for r in again] == [(2, True), (3, True), (4, True)]
    assert [r.envelope_json for r in again] == [r.envelope_json for r in first]
    # Part of a batch recorded before (alone): that part is a duplicate, the rest appends.
    alone = progress(task_id, 40)
    await store.append(alone)
    mixed = await store.append_many([alone, progress(task_id, 50)])
    assert [(r.sequence, r.duplicate) for r in mixed] == [(5, True), (6, False)]
    assert await count(pool, "SELECT count(*) FROM outbox WHERE task_id = %s", task_id) == 6


async def test_a_refused_event_leaves_nothing_of_its_batch(pool: AsyncConnectionPool) -> None:
    store = EventStore(pool, budget=EventBudget(3))
    task_id = new_task_id()
    await store.append(event(task_id, "task.created.v1", CREATED))
    with pytest.raises(EventBudgetExceededError):
        await store.append_many([progress(task_id, p) for p in (10, 20, 30)])  # 4 > 3
    assert await store.last_sequence(task_id) == 1
    assert await count(pool, "SELECT count(*) FROM events WHERE task_id = %s", task_id) == 1
    assert [r.sequence for r in await store.append_many([progress(task_id, 10)])] == [2]

    closed = new_task_id()
    await store.append(event(closed, "task.created.v1", CREATED))
    await store.append(event(closed, "task.completed.v1", {"result": {}}))
    with pytest.raises(ChapterClosedError):
        await store.append_many([progress(closed, 10), progress(closed, 20)])
    assert await store.last_sequence(closed) == 2


async def test_two_recordings_of_one_batch_racing_on_the_row_lock_write_it_once(
    pool: AsyncConnectionPool, database_url: str
) -> None:
    store = EventStore(pool)
    task_id = new_task_id()
    await store.append(event(task_id, "task.created.v1", CREATED))
    batch = [progress(task_id, p) for p in (10, 20)]
    async with await psycopg.AsyncConnection.connect(database_url) as holder:
        await holder.execute("SELECT 1 FROM tasks WHERE task_id = %s FOR UPDATE", (task_id,))
        racing = [asyncio.create_task(store.append_many(batch)) for _ in range(2)]

        async def both_wait() -> bool:
            return await count(pool, _WAITING_ON_LOCKS, _APPENDS_LIKE) == 2

        await until(both_wait, what="both batches waiting on the task row")
        await holder.commit()
    results = await asyncio.gather(*racing)
    assert sorted([r.duplicate for r in results[0]] + [r.duplicate for r in results[1]]) == [
        False,
        False,
        True,
        True,
    ]
    assert [r.sequence for r in results[0]] == [r.sequence for r in results[1]] == [2, 3]
    assert (await store.append(progress(task_id, 30))).sequence == 4  # no gap
    assert await count(pool, "SELECT count(*) FROM outbox WHERE task_id = %s", task_id) == 4


async def test_a_batch_holds_one_tasks_events(pool: AsyncConnectionPool) -> None:
    store = EventStore(pool)
    with pytest.raises(ValueError, match="one task"):
        await store.append_many([progress(new_task_id(), 1), progress(new_task_id(), 2)])
    assert await store.append_many([]) == []
