"""The event store on a real Postgres: dedupe, dense sequences, pages, outbox."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool

from schemas import EventEnvelope
from store import EventStore, InvalidCursorError, Outbox, TaskReader
from store.events import ChapterClosedError
from store.migrate import migrate, migration_files
from tests.polling import until


def new_task_id() -> str:
    return str(uuid.uuid4())


def event(
    task_id: str, event_type: str, data: dict[str, Any], event_id: str | None = None
) -> EventEnvelope:
    return EventEnvelope(
        id=event_id or str(uuid.uuid4()),
        type=event_type,
        subject=task_id,
        time=datetime.now(UTC),
        data=data,
    )


def progress(task_id: str, percent: float) -> EventEnvelope:
    return event(
        task_id,
        "task.step.progress.v1",
        {"index": 1, "name": "s", "percent": percent, "total_steps": 1},
    )


async def count(pool: AsyncConnectionPool, sql: str, *params: Any) -> int:
    async with pool.connection() as conn:
        cursor = await conn.execute(sql, params)
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def test_sequences_are_dense_per_task_under_concurrent_appends(
    pool: AsyncConnectionPool,
) -> None:
    store = EventStore(pool)
    tasks = [new_task_id() for _ in range(3)]
    results = await asyncio.gather(
        *(store.append(progress(t, i)) for i in range(40) for t in tasks)
    )
    for task_id in tasks:
        history = await store.history(task_id, limit=1000)
        assert [e.sequence for e in history] == list(range(1, 41))
        assert await store.last_sequence(task_id) == 40
    assert not any(r.duplicate for r in results)


async def test_stored_envelope_carries_its_sequence(pool: AsyncConnectionPool) -> None:
    store = EventStore(pool)
    task_id = new_task_id()
    first = await store.append(
        event(task_id, "task.created.v1", {"task_type": "demo.pipeline", "input": {}})
    )
    second = await store.append(progress(task_id, 10))
    stored = await store.history(task_id)
    assert [orjson.loads(e.envelope_json)["sequence"] for e in stored] == [1, 2]
    assert stored[1].envelope_json == second.envelope_json
    assert orjson.loads(first.envelope_json)["subject"] == task_id
    EventEnvelope.model_validate_json(stored[0].envelope_json)


async def test_duplicate_event_id_is_recorded_once(pool: AsyncConnectionPool) -> None:
    store = EventStore(pool)
    task_id = new_task_id()
    original = event(
        task_id, "task.created.v1", {"task_type": "demo.pipeline", "input": {}}, "dup-" + task_id
    )
    first = await store.append(original)
    again = await asyncio.gather(*(store.append(original) for _ in range(5)))
    after = await store.append(progress(task_id, 5))
    assert not first.duplicate
    assert all(r.duplicate and r.sequence == first.sequence for r in again)
    assert all(r.envelope_json == first.envelope_json for r in again)
    assert after.sequence == 2  # the duplicates did not burn sequence numbers
    assert await count(pool, "SELECT count(*) FROM events WHERE task_id = %s", task_id) == 2
    assert await count(pool, "SELECT count(*) FROM outbox WHERE task_id = %s", task_id) == 2


async def test_a_duplicate_committed_during_the_wait_for_the_row_lock_skips_no_sequence(
    pool: AsyncConnectionPool, database_url: str
) -> None:
    """Two appends of one event id wait on the task row (held here); released, the first
    commits and the second, whose snapshot predates it, must write nothing at all."""
    store = EventStore(pool)
    task_id = new_task_id()
    await store.append(event(task_id, "task.created.v1", {"task_type": "t", "input": {}}))
    same = progress(task_id, 50)
    async with await psycopg.AsyncConnection.connect(database_url) as holder:
        await holder.execute("SELECT 1 FROM tasks WHERE task_id = %s FOR UPDATE", (task_id,))
        racing = [asyncio.create_task(store.append(same)) for _ in range(2)]

        async def both_wait() -> bool:
            return await count(pool, _WAITING_ON_LOCKS, _APPENDS_LIKE) == 2

        await until(both_wait, what="both appends waiting on the task row")
        await holder.commit()
    results = sorted(await asyncio.gather(*racing), key=lambda r: r.duplicate)
    assert [r.duplicate for r in results] == [False, True]
    assert results[0].sequence == results[1].sequence == 2
    assert (await store.append(progress(task_id, 60))).sequence == 3  # no gap
    assert await count(pool, "SELECT count(*) FROM outbox WHERE task_id = %s", task_id) == 3


_WAITING_ON_LOCKS = (
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s"
)
_APPENDS_LIKE = "%INSERT INTO tasks AS t%"


async def test_store_refuses_an_envelope_that_already_has_a_sequence(
    pool: AsyncConnectionPool,
) -> None:
    with pytest.raises(ValueError, match="assigns"):
        await EventStore(pool).append(progress(new_task_id(), 1).with_sequence(3))


async def test_history_pages_follow_after_and_limit(pool: AsyncConnectionPool) -> None:
    store = EventStore(pool)
    task_id = new_task_id()
    for i in range(7):
        await store.append(progress(task_id, i))
    page1 = await store.history(task_id, after=0, limit=3)
    page2 = await store.history(task_id, after=page1[-1].sequence, limit=3)
    page3 = await store.history(task_id, after=page2[-1].sequence, limit=3)
    assert [e.sequence for e in page1 + page2 + page3] == list(range(1, 8))
    assert await store.history(task_id, after=7) == []
    assert await store.history(new_task_id()) == []
    assert await store.last_sequence(new_task_id()) is None


async def test_read_model_follows_events_and_terminal_status_sticks(
    pool: AsyncConnectionPool,
) -> None:
    store, reader = EventStore(pool), TaskReader(pool)
    task_id = new_task_id()
    await store.append(
        event(task_id, "task.created.v1", {"task_type": "demo.pipeline", "input": {"steps": 2}})
    )
    assert (await reader.get(task_id)).status == "running"  # type: ignore[union-attr]
    await store.append(event(task_id, "task.paused.v1", {}))
    assert (await reader.get(task_id)).status == "paused"  # type: ignore[union-attr]
    await store.append(event(task_id, "task.completed.v1", {"result": {"n": 1}}))
    with pytest.raises(ChapterClosedError):  # a late straggler is refused, never appended
        await store.append(event(task_id, "task.resumed.v1", {}))
    record = await reader.get(task_id)
    assert record is not None
    assert (record.status, record.result, record.progress, record.last_seq) == (
        "completed",
        {"n": 1},
        100.0,
        3,
    )
    assert record.task_type == "demo.pipeline"


async def test_progress_counts_completed_steps_even_when_they_run_in_parallel(
    pool: AsyncConnectionPool,
) -> None:
    store, reader = EventStore(pool), TaskReader(pool)
    task_id = new_task_id()

    async def progress_now() -> float:
        record = await reader.get(task_id)
        assert record is not None
        return record.progress

    def step(kind: str, index: int, **extra: Any) -> EventEnvelope:
        data = {"index": index, "name": f"s{index}", "total_steps": 4, **extra}
        return event(task_id, f"task.step.{kind}.v1", data)

    await store.append(event(task_id, "task.created.v1", {"task_type": "demo.fanout", "input": {}}))
    await store.append(step("started", 3, attempt=1))
    await store.append(step("started", 4, attempt=1))
    await store.append(step("progress", 4, percent=50))
    assert await progress_now() == 12.5  # (0 completed + 0.5) / 4
    await store.append(step("completed", 4, duration_seconds=1))
    assert await progress_now() == 25.0
    await store.append(step("progress", 3, percent=20))
    assert await progress_now() == 30.0  # (1 + 0.2) / 4
    await store.append(step("started", 1, attempt=1))  # a new step never moves progress back
    assert await progress_now() == 30.0
    for index in (3, 1, 2):
        await store.append(step("completed", index, duration_seconds=1))
    assert await progress_now() == 100.0


async def test_task_pages_newest_first_with_filters_and_cursor(pool: AsyncConnectionPool) -> None:
    store, reader = EventStore(pool), TaskReader(pool)
    kind = f"kind-{uuid.uuid4().hex[:8]}"
    ids = []
    for _ in range(5):
        task_id = new_task_id()
        ids.append(task_id)
        await store.append(event(task_id, "task.created.v1", {"task_type": kind, "input": {}}))
    await store.append(event(ids[0], "task.failed.v1", {"error": "x"}))
    seen: list[str] = []
    cursor = None
    while True:
        page = await reader.page(task_type=kind, limit=2, cursor=cursor)
        seen.extend(t.task_id for t in page.tasks)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    failed = await reader.page(task_type=kind, status="failed")
    assert [t.task_id for t in failed.tasks] == [ids[0]]
    with pytest.raises(InvalidCursorError):
        await reader.page(cursor="not-a-cursor!")


async def test_outbox_claims_are_disjoint_between_relays(pool: AsyncConnectionPool) -> None:
    store, outbox = EventStore(pool), Outbox(pool)
    task_id = new_task_id()
    for i in range(10):
        await store.append(progress(task_id, i))
    claimed: list[list[int]] = []
    both_holding = asyncio.Barrier(2)

    async def relay() -> None:
        async with outbox.claim(grace=timedelta(0), limit=1000) as batch:
            mine = [e.outbox_id for e in batch.events if e.task_id == task_id]
            claimed.append(mine)
            await both_holding.wait()
            await batch.mark_published(mine)

    await asyncio.gather(relay(), relay())
    assert sorted(claimed[0] + claimed[1]) == sorted(set(claimed[0] + claimed[1]))
    assert len(claimed[0]) + len(claimed[1]) == 10
    assert (
        await count(
            pool, "SELECT count(*) FROM outbox WHERE task_id = %s AND published_at IS NULL", task_id
        )
        == 0
    )


async def test_outbox_grace_hides_fresh_rows(pool: AsyncConnectionPool) -> None:
    store, outbox = EventStore(pool), Outbox(pool)
    task_id = new_task_id()
    await store.append(progress(task_id, 1))
    async with outbox.claim(grace=timedelta(minutes=5), limit=1000) as batch:
        assert task_id not in {e.task_id for e in batch.events}


async def test_migrations_apply_once_when_run_concurrently_on_a_fresh_database(
    database_url: str,
) -> None:
    name = f"migrate_{uuid.uuid4().hex[:10]}"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as admin:
        await admin.execute(f"CREATE DATABASE {name}".encode())
    fresh = make_conninfo(database_url, dbname=name)
    try:
        results = await asyncio.gather(*(migrate(fresh) for _ in range(3)))
        applied = [versions for versions in results if versions]
        assert len(applied) == 1  # exactly one migrator did the work
        assert applied[0] == [version for version, _ in migration_files()]
        assert await migrate(fresh) == []
        async with await psycopg.AsyncConnection.connect(fresh) as conn:
            cursor = await conn.execute("SELECT count(*) FROM schema_migrations")
            row = await cursor.fetchone()
        assert row is not None
        assert row[0] == len(migration_files())
    finally:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as admin:
            await admin.execute(f"DROP DATABASE {name} WITH (FORCE)".encode())
