"""`WorkerRuntime` on real servers: it supervises its loops and stops in order."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from psycopg import AsyncConnection
from redis.asyncio import Redis

from activities.published_marks import PublishedMarks
from broker import topic_for
from schemas import EventEnvelope
from settings import Settings
from store import Outbox
from tests.polling import until
from worker.event_handler import EventHandler
from worker.relay import OutboxRelay
from worker.runtime import WorkerRuntime

STREAM = "taskplane:events"


def runtime_settings(database_url: str, redis_url: str, temporal_address: str) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        temporal_address=temporal_address,
        task_queue=f"runtime-{uuid.uuid4().hex[:8]}",
        worker_metrics_port=None,
        worker_metrics_temporal_port=None,
        reconcile_enabled=False,
        handler_block_seconds=0.2,
    )


async def test_a_loop_that_dies_takes_the_runtime_down_with_its_error(
    database_url: str, redis_url: str, temporal_address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker without its relay must not go on running tasks: the loop's error ends
    the runtime (and the process, whose supervisor restarts it)."""

    async def broken_relay(self: OutboxRelay, listen: str | None = None) -> None:
        raise RuntimeError("the relay broke")

    monkeypatch.setattr(OutboxRelay, "run", broken_relay)

    body_finished = False

    async def run() -> None:
        nonlocal body_finished
        async with WorkerRuntime(runtime_settings(database_url, redis_url, temporal_address)):
            await asyncio.sleep(60)  # cancelled by the group as soon as the relay fails
            body_finished = True

    with pytest.raises(ExceptionGroup) as raised:
        await run()
    assert not body_finished
    assert [str(e) for e in raised.value.exceptions] == ["the relay broke"]


async def test_the_blocks_own_error_comes_out_as_it_is(
    database_url: str, redis_url: str, temporal_address: str
) -> None:
    async def run() -> None:
        async with WorkerRuntime(runtime_settings(database_url, redis_url, temporal_address)):
            raise LookupError("from the body")

    with pytest.raises(LookupError, match="from the body"):
        await run()


async def test_it_stops_while_its_durable_group_works_through_a_backlog(
    database_url: str, redis_url: str, temporal_address: str
) -> None:
    """Stopping while the durable handler works through a backlog: the runner ends
    after the event in hand — never cancelled inside a handler or a blocking read —
    and every event it handled is marked processed."""
    group = f"runtime-backlog-{uuid.uuid4().hex[:8]}"
    first = asyncio.Event()
    cancelled_inside: list[str] = []

    async def record(event: EventEnvelope, conn: AsyncConnection) -> None:
        first.set()
        try:
            await conn.execute("SELECT pg_sleep(0.01)")
        except asyncio.CancelledError:
            cancelled_inside.append(event.id)
            raise

    settings = runtime_settings(database_url, redis_url, temporal_address)
    runtime = WorkerRuntime(settings, handlers=[EventHandler(name=group, handle=record)])
    task_id = str(uuid.uuid4())
    admin = Redis.from_url(redis_url)
    try:
        async with runtime:
            # A new group starts at the stream's end: the backlog comes after it exists.
            await until(lambda: group_exists(admin, group))
            for n in range(300):
                await runtime.broker.publish(
                    topic_for(task_id), progress(task_id, n).model_dump_json()
                )
            await asyncio.wait_for(first.wait(), 30)
    finally:
        await admin.aclose()
    handled = runtime.handlers.counters.handled
    assert cancelled_inside == []
    assert handled >= 1
    async with await AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM processed_events WHERE consumer = %s", (group,)
        )
        row = await cursor.fetchone()
    assert row is not None
    assert row[0] == handled


async def group_exists(admin: Redis, group: str) -> bool:
    groups = await admin.xinfo_groups(STREAM)
    return any(g["name"].decode() == group for g in groups)


def progress(task_id: str, n: int) -> EventEnvelope:
    return EventEnvelope(
        id=str(uuid.uuid4()),
        type="task.step.progress.v1",
        subject=task_id,
        time=datetime.now(UTC),
        data={"index": 1, "name": "s", "percent": n % 100, "total_steps": 1},
        sequence=n + 1,
    )


async def test_it_writes_the_published_marks_still_gathering_when_it_stops(
    database_url: str, redis_url: str, temporal_address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Marks wait a moment to go out several at once; a stop must not leave them for the
    relay to republish."""

    class SlowMarks(PublishedMarks):  # marks that would wait an hour unless flushed
        def __init__(self, outbox: Outbox, *, delay: float, timeout: float) -> None:
            super().__init__(outbox, delay=3600.0, timeout=timeout)

    monkeypatch.setattr("activities.publisher.PublishedMarks", SlowMarks)
    task_id = str(uuid.uuid4())
    async with WorkerRuntime(runtime_settings(database_url, redis_url, temporal_address)) as rt:
        await rt.recorder.record(
            event_id=str(uuid.uuid4()),
            task_id=task_id,
            event_type="task.step.progress.v1",
            data={"index": 1, "name": "s", "percent": 50.0, "total_steps": 1},
        )
        async with await AsyncConnection.connect(database_url) as conn:
            cursor = await conn.execute(
                "SELECT published_at IS NULL FROM outbox WHERE task_id = %s", (task_id,)
            )
            assert await cursor.fetchall() == [(True,)]  # published, its mark still waiting
    async with await AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute(
            "SELECT published_at IS NOT NULL FROM outbox WHERE task_id = %s", (task_id,)
        )
        assert await cursor.fetchall() == [(True,)]
