"""Durable handlers on real Redis and Postgres: at least once in, exactly one effect out.

Each test gets its own Redis stream (so no other suite's events reach it), its
own handler name (the consumer group and the `processed_events` key) and its
own effect table, written by the handler through the connection it is given.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import orjson
import pytest
from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from broker import DeadLetterReason, topic_for
from broker.redis import RedisBroker
from schemas import EventEnvelope
from schemas.examples import example_envelope
from store.processed import ProcessedEvents
from tests.polling import until
from worker.handlers import EventHandler, HandlerRunner, PermanentHandlerError, stop_handlers

pytestmark = pytest.mark.timeout(120)


@dataclass
class Setup:
    broker: RedisBroker
    stream: str
    handler_name: str
    table: str
    pool: AsyncConnectionPool
    redis_url: str

    async def effects(self) -> dict[str, int]:
        """event id → how many effect rows the handler committed for it."""
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                sql.SQL("SELECT event_id, count(*) FROM {} GROUP BY event_id").format(
                    sql.Identifier(self.table)
                )
            )
            return {str(event_id): int(n) for event_id, n in await cursor.fetchall()}

    async def write_effect(self, event: EventEnvelope, conn: AsyncConnection) -> None:
        await conn.execute(
            sql.SQL("INSERT INTO {} (event_id) VALUES (%s)").format(sql.Identifier(self.table)),
            (event.id,),
        )

    def runner(
        self,
        handle: Callable[[EventEnvelope, AsyncConnection], Awaitable[None]] | None = None,
        *,
        claim_idle_seconds: float = 30.0,
        max_deliveries: int = 5,
    ) -> HandlerRunner:
        runner = HandlerRunner(
            self.broker,
            ProcessedEvents(self.pool),
            consumer=f"living-{uuid.uuid4().hex[:6]}",
            block_seconds=0.1,
            claim_idle_seconds=claim_idle_seconds,
            max_deliveries=max_deliveries,
        )
        runner.register(EventHandler(self.handler_name, handle or self.write_effect))
        return runner


@pytest.fixture
async def setup(redis_url: str, pool: AsyncConnectionPool) -> AsyncIterator[Setup]:
    test_id = uuid.uuid4().hex[:10]
    stream = f"taskplane:test:{test_id}"
    table = f"durable_effects_{test_id}"
    async with pool.connection() as conn:
        await conn.execute(
            sql.SQL("CREATE TABLE {} (id bigserial PRIMARY KEY, event_id text NOT NULL)").format(
                sql.Identifier(table)
            )
        )
    broker = RedisBroker(redis_url, stream_key=stream, client_name=f"taskplane-test-{test_id}")
    await broker.connect()
    try:
        yield Setup(broker, stream, f"test-handler-{test_id}", table, pool, redis_url)
    finally:
        await broker.close()
        admin = Redis.from_url(redis_url)
        await admin.delete(stream, f"{stream}:dead")
        await admin.aclose()
        async with pool.connection() as conn:
            await conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))


def new_event(event_type: str = "task.step.progress.v1") -> str:
    envelope = example_envelope(event_type)
    envelope["id"] = str(uuid.uuid4())
    return orjson.dumps(envelope).decode()


def event_id(payload: str) -> str:
    return str(orjson.loads(payload)["id"])


async def running(runner: HandlerRunner, setup: Setup) -> asyncio.Task[None]:
    """The runner, once its consumer group exists: what is published from here on reaches it."""
    task = asyncio.create_task(runner.run())
    admin = Redis.from_url(setup.redis_url)
    try:
        await until(lambda: _group_exists(admin, setup), what="the handler's consumer group")
    finally:
        await admin.aclose()
    return task


async def stop(runner: HandlerRunner, task: asyncio.Task[None]) -> None:
    await stop_handlers(runner, task)


async def test_duplicates_have_one_effect_each(setup: Setup) -> None:
    runner = setup.runner()
    task = await running(runner, setup)
    events = [new_event() for _ in range(10)]
    for payload in events + events:  # every event published twice: two stream entries each
        await setup.broker.publish(topic_for("t"), payload)

    async def all_seen() -> bool:
        return runner.counters.handled + runner.counters.duplicates == 2 * len(events)

    await until(all_seen)
    await stop(runner, task)
    assert await setup.effects() == {event_id(p): 1 for p in events}
    assert (runner.counters.handled, runner.counters.duplicates) == (10, 10)
    processed = ProcessedEvents(setup.pool)
    assert all([await processed.was_processed(setup.handler_name, event_id(p)) for p in events])


async def test_a_consumer_killed_mid_handling_leaves_its_work_to_the_living(
    setup: Setup, redis_url: str, database_url: str
) -> None:
    doomed = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.durable_child",
        redis_url,
        database_url,
        setup.stream,
        setup.handler_name,
        setup.table,
        stdout=asyncio.subprocess.PIPE,
    )
    admin = Redis.from_url(redis_url)
    events = [new_event() for _ in range(5)]
    try:
        # Its group must exist before publishing, or the events would predate it.
        await until(lambda: _group_exists(admin, setup), within=20)
        for payload in events:
            await setup.broker.publish(topic_for("t"), payload)
        assert doomed.stdout is not None
        line = await asyncio.wait_for(doomed.stdout.readline(), 20)
        assert line.decode().split() == ["handling", event_id(events[0])]
    finally:
        doomed.kill()  # SIGKILL: mid-transaction, nothing acknowledged
        await doomed.wait()

    # The dead consumer's messages are pending in the group; a living one claims them.
    runner = setup.runner(claim_idle_seconds=0.5)
    task = await running(runner, setup)

    async def all_handled() -> bool:
        return runner.counters.handled == len(events)

    await until(all_handled)
    await stop(runner, task)
    assert await setup.effects() == {event_id(p): 1 for p in events}
    summary = await admin.xpending(setup.stream, setup.handler_name)
    assert summary["pending"] == 0
    await admin.aclose()


async def _group_exists(admin: Redis, setup: Setup) -> bool:
    try:
        groups = await admin.xinfo_groups(setup.stream)
    except Exception:
        return False
    return any(g["name"].decode() == setup.handler_name for g in groups)


async def test_invalid_messages_are_logged_raw_dead_lettered_and_the_runner_goes_on(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    runner = setup.runner()
    task = await running(runner, setup)
    junk = ['{"specversion": "1.0", "id": ', new_event().replace("task.step", "task.stop")]
    good = new_event()
    with caplog.at_level(logging.WARNING, logger="broker.durable"):
        for payload in [*junk, good]:
            await setup.broker.publish(topic_for("t"), payload)

        async def handled() -> bool:
            return runner.counters.handled == 1

        await until(handled)
    await stop(runner, task)
    assert await setup.effects() == {event_id(good): 1}
    letters = await setup.broker.dead_letters()
    assert [(d.reason, d.payload) for d in letters] == [
        (DeadLetterReason.MALFORMED, junk[0]),
        (DeadLetterReason.UNKNOWN_TYPE, junk[1]),
    ]
    raws = [getattr(r, "raw", None) for r in caplog.records if r.msg == "invalid message refused"]
    assert raws == junk
    assert setup.broker.stats().invalid >= 2


async def test_an_event_from_a_newer_producer_is_handled_not_dead_lettered(
    setup: Setup,
) -> None:
    """Tolerant reader: unknown data fields and extension attributes are ignored."""
    seen: list[EventEnvelope] = []

    async def handle(event: EventEnvelope, conn: AsyncConnection) -> None:
        seen.append(event)
        await setup.write_effect(event, conn)

    runner = setup.runner(handle)
    task = await running(runner, setup)
    newer = orjson.loads(new_event())
    newer["data"]["eta_seconds"] = 4.5
    newer["partitionkey"] = "tenant-a"
    payload = orjson.dumps(newer).decode()
    await setup.broker.publish(topic_for("t"), payload)

    async def handled() -> bool:
        return runner.counters.handled == 1

    await until(handled)
    await stop(runner, task)
    assert await setup.effects() == {event_id(payload): 1}
    assert await setup.broker.dead_letters() == []
    assert seen[0].model_extra == {"partitionkey": "tenant-a"}
    assert seen[0].data["eta_seconds"] == 4.5


async def test_handlers_get_the_latest_version_of_an_older_stored_event(setup: Setup) -> None:
    """Upcasting: a `task.terminated.v1` on the stream reaches handlers as v2."""
    seen: list[EventEnvelope] = []

    async def handle(event: EventEnvelope, conn: AsyncConnection) -> None:
        seen.append(event)
        await setup.write_effect(event, conn)

    runner = setup.runner(handle)
    task = await running(runner, setup)
    payload = new_event("task.terminated.v1")
    await setup.broker.publish(topic_for("t"), payload)

    async def handled() -> bool:
        return runner.counters.handled == 1

    await until(handled)
    await stop(runner, task)
    assert (seen[0].type, seen[0].id) == ("task.terminated.v2", event_id(payload))
    assert seen[0].data["timed_out"] is False


async def test_a_failing_handler_is_retried_then_dead_lettered_without_an_effect(
    setup: Setup,
) -> None:
    poison, flaky, fine = new_event(), new_event(), new_event()
    attempts: dict[str, int] = {}

    async def handle(event: EventEnvelope, conn: AsyncConnection) -> None:
        await setup.write_effect(event, conn)  # rolled back when we raise below
        attempts[event.id] = attempts.get(event.id, 0) + 1
        if event.id == event_id(poison):
            raise RuntimeError("this one never works")
        if event.id == event_id(flaky) and attempts[event.id] == 1:
            raise RuntimeError("the first attempt fails")

    runner = setup.runner(handle, claim_idle_seconds=0.3, max_deliveries=3)
    task = await running(runner, setup)
    for payload in (poison, flaky, fine):
        await setup.broker.publish(topic_for("t"), payload)

    async def poison_set_aside() -> bool:
        return bool(await setup.broker.dead_letters())

    await until(poison_set_aside)
    await stop(runner, task)
    assert await setup.effects() == {event_id(flaky): 1, event_id(fine): 1}
    assert attempts == {event_id(poison): 3, event_id(flaky): 2, event_id(fine): 1}
    (letter,) = await setup.broker.dead_letters()
    assert (letter.reason, letter.payload) == (DeadLetterReason.MAX_DELIVERIES, poison)
    processed = ProcessedEvents(setup.pool)
    assert not await processed.was_processed(setup.handler_name, event_id(poison))


async def test_a_permanent_error_dead_letters_at_once(setup: Setup) -> None:
    async def handle(event: EventEnvelope, conn: AsyncConnection) -> None:
        raise PermanentHandlerError("the webhook endpoint is gone (410)")

    runner = setup.runner(handle)
    task = await running(runner, setup)
    payload = new_event()
    await setup.broker.publish(topic_for("t"), payload)

    async def set_aside() -> bool:
        return bool(await setup.broker.dead_letters())

    await until(set_aside, within=5)
    await stop(runner, task)
    (letter,) = await setup.broker.dead_letters()
    assert (letter.reason, letter.error) == (
        DeadLetterReason.REJECTED,
        "the webhook endpoint is gone (410)",
    )
