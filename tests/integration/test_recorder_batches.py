"""`EventRecorder.record_many` on real Postgres and Redis: a step's flush is one
transaction and one publish; a failed publish hands every event of it to the relay."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import orjson
import pytest
from psycopg_pool import AsyncConnectionPool

from activities.recorder import EventRecorder, NewEvent
from broker import topic_for
from broker.redis import RedisBroker
from store import EventStore, Outbox, open_pool
from tests.faults.proxy import fault_proxy
from tests.own_database import own_database


def _flush(n: int) -> list[NewEvent]:
    where = {"step": 1, "attempt": 1}
    return [
        NewEvent(
            str(uuid.uuid4()),
            "task.output.v1",
            {"stream": "answer", "text": f"chunk {n} ", "offset": n * 8, **where},
        ),
        NewEvent(str(uuid.uuid4()), "task.metadata.updated.v1", {"patch": {"n": n}, **where}),
        NewEvent(
            str(uuid.uuid4()),
            "task.step.progress.v1",
            {"index": 1, "name": "answer", "percent": 10.0 * n, "total_steps": 1, "attempt": 1},
        ),
    ]


async def _created(recorder: EventRecorder) -> str:
    task_id = str(uuid.uuid4())
    await recorder.record(
        event_id=str(uuid.uuid4()),
        task_id=task_id,
        event_type="task.created.v1",
        data={"task_type": "demo.chat", "input": {}},
    )
    return task_id


async def _outbox(pool: AsyncConnectionPool, task_id: str) -> list[tuple[int, bool, int]]:
    """(seq, published, attempts) of the task's outbox rows."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT seq, published_at IS NOT NULL, attempts FROM outbox"
            " WHERE task_id = %s ORDER BY seq",
            (task_id,),
        )
        return [(int(s), bool(p), int(a)) for s, p, a in await cursor.fetchall()]


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    """A database of this test's own: no relay of the session takes its handed-over rows."""
    async with own_database(database_url, "batches") as url:
        the_pool = await open_pool(url, min_size=1, max_size=4)
        yield the_pool
        await the_pool.close()


@pytest.fixture
async def broker(redis_url: str) -> AsyncIterator[RedisBroker]:
    the_broker = RedisBroker(redis_url, publish_timeout=0.3, client_name="taskplane-batch-test")
    await the_broker.connect()
    yield the_broker
    await the_broker.close()


async def test_a_flush_is_published_together_in_order_and_marked(
    pool: AsyncConnectionPool, broker: RedisBroker
) -> None:
    recorder = EventRecorder(EventStore(pool), Outbox(pool), broker)
    task_id = await _created(recorder)
    events = _flush(1)
    async with broker.subscribe(topic_for(task_id)) as sub:
        results = await recorder.record_many(task_id, events)
        got = []
        for _ in events:
            delivery = await sub.get(timeout=5)
            assert delivery is not None
            assert delivery.payload is not None
            got.append(orjson.loads(delivery.payload))
    assert [r.sequence for r in results] == [2, 3, 4]
    assert [(e["sequence"], e["id"]) for e in got] == [
        (2 + i, e.event_id) for i, e in enumerate(events)
    ]
    await recorder.flush_marks()
    assert [published for _, published, _ in await _outbox(pool, task_id)] == [True] * 4
    again = await recorder.record_many(task_id, events)  # a retried flush: nothing new
    assert [(r.sequence, r.duplicate) for r in again] == [(2, True), (3, True), (4, True)]
    with pytest.raises(ValueError, match="created"):
        await recorder.record_many(task_id, [NewEvent("x", "task.created.v1", {})])


async def test_a_failed_publish_hands_every_event_of_the_flush_to_the_relay(
    pool: AsyncConnectionPool, redis_url: str
) -> None:
    where = urlsplit(redis_url)
    async with fault_proxy(host=where.hostname, port=where.port) as proxy:
        proxied = RedisBroker(
            f"redis://127.0.0.1:{proxy.port}/0", publish_timeout=0.3, client_name="taskplane-p"
        )
        await proxied.connect()
        try:
            recorder = EventRecorder(EventStore(pool), Outbox(pool), proxied, publish_timeout=0.3)
            task_id = await _created(recorder)
            await recorder.flush_marks()
            await proxy.outage()
            results = await recorder.record_many(task_id, _flush(1))  # never fails
            assert [(r.sequence, r.duplicate) for r in results] == [
                (2, False),
                (3, False),
                (4, False),
            ]
            # Committed, unpublished, each counted as a failed attempt: the relay's now.
            assert (await _outbox(pool, task_id))[1:] == [
                (2, False, 1),
                (3, False, 1),
                (4, False, 1),
            ]
        finally:
            await proxied.close()
