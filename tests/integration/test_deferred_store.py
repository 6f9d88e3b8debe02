"""A deferred start in the store (issue 24; schemas/deferral.py): `task.deferred.v1`,
recorded with no run before the task's run begins, makes the task `queued`, and its
`task.created.v1` still follows (sequence 2) and moves it on; a deferral noticed after
the task started leaves the status alone; a second `task.created.v1` is still refused."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from schemas import EventEnvelope
from store import EventStore
from store.events import AlreadyCreatedError


def _event(task_id: str, event_type: str, data: dict[str, Any]) -> EventEnvelope:
    return EventEnvelope(
        id=str(uuid.uuid4()), type=event_type, subject=task_id, time=datetime.now(UTC), data=data
    )


def _deferred(task_id: str) -> EventEnvelope:
    data = {"until": "2026-12-04T10:00:30Z", "rule": "type-m", "task_type": "demo.fanout"}
    return _event(task_id, "task.deferred.v1", {"reason": "rate_limit", **data})


def _created(task_id: str) -> EventEnvelope:
    data = {"task_type": "demo.fanout", "input": {"branches": 1}, "owner": "acme"}
    return _event(task_id, "task.created.v1", data)


async def _row(pool: AsyncConnectionPool, task_id: str) -> tuple[Any, ...]:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT status, task_type, owner, run_id, last_seq FROM tasks WHERE task_id = %s",
            (task_id,),
        )
        row = await cursor.fetchone()
    assert row is not None
    return tuple(row)


async def test_created_follows_a_deferral(pool: AsyncConnectionPool) -> None:
    store, task_id, run = EventStore(pool), str(uuid.uuid4()), str(uuid.uuid4())
    first = await store.append(_deferred(task_id))
    assert first.sequence == 1
    assert await _row(pool, task_id) == ("queued", "demo.fanout", None, None, 1)

    created = await store.append(_created(task_id), run_id=run)

    assert (created.sequence, created.duplicate) == (2, False)
    assert await _row(pool, task_id) == ("running", "demo.fanout", "acme", run, 2)
    with pytest.raises(AlreadyCreatedError):  # still one creation per task
        await store.append(_created(task_id), run_id=run)
    assert [e.event_type for e in await store.history(task_id)] == [
        "task.deferred.v1",
        "task.created.v1",
    ]


async def test_a_deferral_noticed_after_the_start_leaves_the_status(
    pool: AsyncConnectionPool,
) -> None:
    store, task_id, run = EventStore(pool), str(uuid.uuid4()), str(uuid.uuid4())
    await store.append(_created(task_id), run_id=run)

    late = await store.append(_deferred(task_id))

    assert late.sequence == 2
    assert await _row(pool, task_id) == ("running", "demo.fanout", "acme", run, 2)
