"""Validation at publish, on the real Postgres and Redis: a refused event leaves no trace."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.demo import DemoActivities
from activities.recorder import EventRecorder
from broker import topic_for
from broker.redis import RedisBroker
from schemas import (
    MAX_EVENT_BYTES,
    EventEnvelope,
    InvalidEventDataError,
    InvalidEventError,
    OversizedEventError,
    UnknownEventTypeError,
    check_size,
    decode_event,
    validate_data,
)
from schemas.envelope import schema_id
from schemas.tasks import DemoStepInput
from schemas.workflow import INVALID_EVENT
from store import EventStore


@pytest.fixture
async def watcher(redis_url: str) -> AsyncIterator[RedisBroker]:
    broker = RedisBroker(redis_url, client_name="taskplane-test-watcher")
    await broker.connect()
    yield broker
    await broker.close()


async def rows_for(pool: AsyncConnectionPool, task_id: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    async with pool.connection() as conn:
        for table in ("events", "outbox", "tasks"):
            cursor = await conn.execute(
                f"SELECT count(*) FROM {table} WHERE task_id = %s", (task_id,)
            )
            row = await cursor.fetchone()
            assert row is not None
            counts[table] = int(row[0])
    return counts


async def assert_nothing_published(watcher: RedisBroker, task_id: str, action: Any) -> None:
    """Run `action` while subscribed; then a sentinel must be the first thing that arrives."""
    async with watcher.subscribe(topic_for(task_id)) as subscription:
        await action()
        await watcher.publish(topic_for(task_id), "sentinel")
        async with asyncio.timeout(5):
            first = await anext(aiter(subscription))
    assert first.payload == "sentinel"


def completed_data(blob: str) -> dict[str, Any]:
    """A step's output: structured data, which the recorder never cuts (free text it caps,
    so a huge `message` or `error` is no way to make an event oversized)."""
    return {
        "index": 1,
        "name": "step-1",
        "output": {"blob": blob},
        "duration_seconds": 0.1,
        "total_steps": 1,
    }


@pytest.mark.parametrize(
    ("event_type", "data", "error"),
    [
        pytest.param("task.exploded.v1", {}, UnknownEventTypeError, id="unknown-type"),
        pytest.param(
            "task.step.progress.v1", {"index": 1, "name": "s"}, InvalidEventDataError, id="bad-data"
        ),
        pytest.param(
            "task.step.completed.v1",
            completed_data("x" * MAX_EVENT_BYTES),
            OversizedEventError,
            id="oversized",
        ),
    ],
)
async def test_a_refused_event_writes_nothing_and_publishes_nothing(
    recorder: EventRecorder,
    pool: AsyncConnectionPool,
    watcher: RedisBroker,
    event_type: str,
    data: dict[str, Any],
    error: type[InvalidEventError],
) -> None:
    task_id = str(uuid.uuid4())

    async def record() -> None:
        with pytest.raises(error):
            await recorder.record(
                event_id=str(uuid.uuid4()), task_id=task_id, event_type=event_type, data=data
            )

    await assert_nothing_published(watcher, task_id, record)
    assert await rows_for(pool, task_id) == {"events": 0, "outbox": 0, "tasks": 0}


async def test_the_limit_holds_after_the_store_splices_in_the_sequence(
    recorder: EventRecorder, pool: AsyncConnectionPool
) -> None:
    """An event sized exactly at the limit is stored and decodes; one byte more is refused."""
    task_id = str(uuid.uuid4())
    probe = EventEnvelope.model_validate(
        {
            "id": str(uuid.uuid4()),
            "type": "task.step.completed.v1",
            "subject": task_id,
            "time": "2026-01-02T03:04:05.678901Z",
            "dataschema": schema_id("task.step.completed.v1"),
            # Measured as the recorder sends it: the validated model, defaults included.
            "data": validate_data("task.step.completed.v1", completed_data("")).model_dump(
                mode="json"
            ),
        }
    )
    room = MAX_EVENT_BYTES - check_size(probe)

    with pytest.raises(OversizedEventError):
        await recorder.record(
            event_id=str(uuid.uuid4()),
            task_id=task_id,
            event_type="task.step.completed.v1",
            data=completed_data("x" * (room + 1)),
        )
    assert await rows_for(pool, task_id) == {"events": 0, "outbox": 0, "tasks": 0}

    result = await recorder.record(
        event_id=str(uuid.uuid4()),
        task_id=task_id,
        event_type="task.step.completed.v1",
        data=completed_data("x" * room),
    )
    stored = (await EventStore(pool).history(task_id))[0]
    assert len(stored.envelope_json.encode()) <= MAX_EVENT_BYTES
    assert decode_event(stored.envelope_json).sequence == result.sequence == 1


async def test_the_step_activity_fails_for_good_on_an_event_it_cannot_record(
    recorder: EventRecorder, pool: AsyncConnectionPool
) -> None:
    """A refused event would be refused on every attempt: no retries."""
    task_id = str(uuid.uuid4())
    step = DemoStepInput(
        task_id=task_id,
        index=1,
        total_steps=1,
        name="n" * MAX_EVENT_BYTES,  # makes `task.step.started.v1` too large
        step_seconds=0,
        progress_ticks=0,
    )
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(DemoActivities(recorder).run_step, step)
    assert caught.value.type == INVALID_EVENT
    assert caught.value.non_retryable
    assert isinstance(caught.value.__cause__, OversizedEventError)
    assert await rows_for(pool, task_id) == {"events": 0, "outbox": 0, "tasks": 0}
