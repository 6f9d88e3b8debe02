"""The recorder marks the outbox rows it published a moment later, several at once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from psycopg_pool import AsyncConnectionPool

from activities.recorder import EventRecorder
from broker.redis import RedisBroker
from store import EventStore, Outbox
from tests.polling import until


@pytest.fixture
async def broker(redis_url: str) -> AsyncIterator[RedisBroker]:
    broker = RedisBroker(redis_url)
    await broker.connect()
    yield broker
    await broker.close()


async def record(recorder: EventRecorder, task_id: str, percent: float) -> None:
    await recorder.record(
        event_id=str(uuid.uuid4()),
        task_id=task_id,
        event_type="task.step.progress.v1",
        data={"index": 1, "name": "s", "percent": percent, "total_steps": 1},
    )


async def outbox_rows(pool: AsyncConnectionPool, task_id: str) -> list[tuple[bool, int]]:
    """(published, attempts) of the task's rows, in sequence order."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT published_at IS NOT NULL, attempts FROM outbox WHERE task_id = %s ORDER BY seq",
            (task_id,),
        )
        return [(bool(published), int(attempts)) for published, attempts in await cursor.fetchall()]


async def test_published_rows_are_marked_without_anyone_asking(
    pool: AsyncConnectionPool, broker: RedisBroker
) -> None:
    recorder = EventRecorder(EventStore(pool), Outbox(pool), broker)
    task_id = str(uuid.uuid4())
    for n in range(5):
        await record(recorder, task_id, n)

    async def all_marked() -> bool:
        return await outbox_rows(pool, task_id) == [(True, 1)] * 5

    await until(all_marked, what="the five rows marked published, once each")


async def test_marks_wait_their_delay_and_flush_sends_them_now(
    pool: AsyncConnectionPool, broker: RedisBroker
) -> None:
    recorder = EventRecorder(EventStore(pool), Outbox(pool), broker, mark_delay=3600)
    task_id = str(uuid.uuid4())
    for n in range(3):
        await record(recorder, task_id, n)
    assert await outbox_rows(pool, task_id) == [(False, 0)] * 3  # published, not marked yet
    await recorder.flush_marks()
    assert await outbox_rows(pool, task_id) == [(True, 1)] * 3
