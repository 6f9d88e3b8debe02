"""A durable handler behind the stream's cap heals the trimmed entries from the store.

Real Redis and Postgres: events are recorded the production way (`EventRecorder`:
append with its outbox row, XADD to a stream capped at a few entries, mark
published). The handler's consumer is stopped while more events than the cap
arrive, so the stream trims entries its group never read; restarted, it must
see every event exactly once — the trimmed ones from the store, in order per
task — and say so in its counters. Each test has its own stream and handler
name; the handler only concerns itself with this test's tasks (the database is
shared with other tests, whose events the heal also reads).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from activities.recorder import EventRecorder
from broker.redis import RedisBroker
from broker.redis_streams import read_backlog
from schemas import EventEnvelope
from store import EventStore, Outbox
from store.processed import ProcessedEvents
from tests.polling import until
from worker.handlers import EventHandler, HandlerRunner, stop_handlers

pytestmark = pytest.mark.timeout(120)

CAP = 10  # MAXLEN ~ 10: Redis trims whole nodes of 100 entries, so at most ~110 remain
TASKS = 5
PER_TASK = 60  # 300 events after the stop: at least ~190 trimmed unread


@dataclass
class Setup:
    broker: RedisBroker
    admin: Redis
    stream: str
    handler_name: str
    table: str
    pool: AsyncConnectionPool
    recorder: EventRecorder
    task_ids: list[str]

    async def handle(self, event: EventEnvelope, conn: AsyncConnection) -> None:
        await conn.execute(
            sql.SQL("INSERT INTO {} (event_id, task_id, seq) VALUES (%s, %s, %s)").format(
                sql.Identifier(self.table)
            ),
            (event.id, event.subject, event.sequence),
        )

    async def ours(self, event: EventEnvelope) -> bool:
        return event.subject in self.task_ids

    def runner(self) -> HandlerRunner:
        runner = HandlerRunner(
            self.broker,
            ProcessedEvents(self.pool),
            consumer=f"c-{uuid.uuid4().hex[:6]}",
            block_seconds=0.1,
            heal_margin_seconds=5.0,
        )
        runner.register(EventHandler(self.handler_name, self.handle, applies_to=self.ours))
        return runner

    async def record(self, rounds: int) -> list[str]:
        """`rounds` progress events for every task, interleaved; their ids."""
        ids = []
        for n in range(rounds):
            for task_id in self.task_ids:
                event_id = str(uuid.uuid4())
                await self.recorder.record(
                    event_id=event_id,
                    task_id=task_id,
                    event_type="task.step.progress.v1",
                    data={"index": 1, "name": "s", "percent": float(n), "total_steps": 1},
                )
                ids.append(event_id)
        return ids

    async def effects(self) -> list[tuple[str, str, int]]:
        """(event id, task id, sequence) of every effect, in the order committed."""
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                sql.SQL("SELECT event_id, task_id, seq FROM {} ORDER BY id").format(
                    sql.Identifier(self.table)
                )
            )
            return [(str(e), str(t), int(s)) for e, t, s in await cursor.fetchall()]


@pytest.fixture
async def setup(redis_url: str, pool: AsyncConnectionPool) -> AsyncIterator[Setup]:
    test_id = uuid.uuid4().hex[:10]
    stream = f"taskplane:test:{test_id}"
    table = f"trim_effects_{test_id}"
    async with pool.connection() as conn:
        await conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id bigserial PRIMARY KEY, event_id text NOT NULL,"
                " task_id text NOT NULL, seq bigint NOT NULL)"
            ).format(sql.Identifier(table))
        )
    broker = RedisBroker(
        redis_url, stream_key=stream, stream_maxlen=CAP, client_name=f"taskplane-test-{test_id}"
    )
    await broker.connect()
    admin = Redis.from_url(redis_url, decode_responses=True)
    recorder = EventRecorder(EventStore(pool), Outbox(pool), broker)
    task_ids = [str(uuid.uuid4()) for _ in range(TASKS)]
    try:
        yield Setup(broker, admin, stream, f"trim-{test_id}", table, pool, recorder, task_ids)
    finally:
        await broker.close()
        await admin.delete(stream, f"{stream}:dead")
        await admin.aclose()
        async with pool.connection() as conn:
            await conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))


async def test_a_handler_behind_the_trim_heals_every_event_once_and_in_order(
    setup: Setup,
) -> None:
    first = setup.runner()
    running = asyncio.create_task(first.run())
    before = await setup.record(1)  # handled live: the group has a position

    async def handled_live() -> bool:
        return first.counters.handled == len(before)

    await until(handled_live)
    await stop_handlers(first, running)

    missed = await setup.record(PER_TASK)  # nobody reads: the stream trims unread entries
    backlog = await read_backlog(setup.admin, setup.stream)
    (group,) = [g for g in backlog.groups if g.group == setup.handler_name]
    assert group.behind_trim
    assert backlog.length < len(missed) // 2

    second = setup.runner()
    running = asyncio.create_task(second.run())

    async def caught_up() -> bool:
        return len(await setup.effects()) >= len(before) + len(missed)

    await until(caught_up, within=60)
    after = await setup.record(1)  # and on it goes, live

    async def all_seen() -> bool:
        return len(await setup.effects()) >= len(before) + len(missed) + len(after)

    await until(all_seen)
    await asyncio.sleep(0.3)  # anything more would be a second effect: there must be none
    await stop_handlers(second, running)

    effects = await setup.effects()
    assert sorted(e for e, _, _ in effects) == sorted(before + missed + after)  # once each
    for task_id in setup.task_ids:  # in sequence order per task
        sequences = [seq for _, t, seq in effects if t == task_id]
        assert sequences == sorted(sequences)
        assert sequences == list(range(1, 1 + len(sequences)))
    assert second.counters.trim_gaps == 1
    # What the stream still held was handled from the store too (earlier), and came again
    # from the stream as a duplicate; at least everything trimmed was healed.
    assert second.counters.healed >= len(missed) - backlog.length
    assert second.counters.handled == len(missed) + len(after)
    backlog = await read_backlog(setup.admin, setup.stream)
    (group,) = [g for g in backlog.groups if g.group == setup.handler_name]
    assert not group.behind_trim
    assert group.pending == 0


async def test_without_a_healer_gaps_are_skipped_loudly(setup: Setup) -> None:
    """A bare consumer (no `heal`): its trimmed pending entries and the gap after its
    position are counted as unhealed gaps, and it reads on."""
    async with setup.broker.consume("bare", consumer="c", block_seconds=0.1) as consumer:
        delivered = await setup.record(1)  # all five read in one batch: they are pending
        async with asyncio.timeout(10):
            message = await anext(aiter(consumer))
        await consumer.ack(message)  # four stay pending, unacknowledged
    await setup.record(PER_TASK)  # trims those four, and entries never read
    async with setup.broker.consume("bare", consumer="c", block_seconds=0.1) as consumer:
        async with asyncio.timeout(10):
            message = await anext(aiter(consumer))
        await consumer.ack(message)
    stats = setup.broker.stats()
    gone = len(delivered) - 1
    assert (stats.gone, stats.trim_gaps, stats.unhealed_gaps) == (gone, gone + 1, gone + 1)
    backlog = await read_backlog(setup.admin, setup.stream)
    (group,) = [g for g in backlog.groups if g.group == "bare"]
    assert not group.behind_trim


async def test_a_heal_that_fails_keeps_the_gap_and_is_tried_again(setup: Setup) -> None:
    first = setup.runner()
    running = asyncio.create_task(first.run())
    before = await setup.record(1)

    async def handled_live() -> bool:
        return first.counters.handled == len(before)

    await until(handled_live)
    await stop_handlers(first, running)
    missed = await setup.record(PER_TASK)

    failures_left = [1]

    async def fails_once(event: EventEnvelope, conn: AsyncConnection) -> None:
        if event.id == missed[len(missed) // 2] and failures_left[0]:
            failures_left[0] -= 1
            raise RuntimeError("a handler failure in the middle of the heal")
        await setup.handle(event, conn)

    second = HandlerRunner(
        setup.broker,
        ProcessedEvents(setup.pool),
        consumer="second",
        block_seconds=0.1,
        heal_margin_seconds=5.0,
    )
    second.register(EventHandler(setup.handler_name, fails_once, applies_to=setup.ours))
    running = asyncio.create_task(second.run())

    async def caught_up() -> bool:
        return len(await setup.effects()) >= len(before) + len(missed)

    await until(caught_up, within=60)
    await asyncio.sleep(0.3)
    await stop_handlers(second, running)
    effects = await setup.effects()
    assert sorted(e for e, _, _ in effects) == sorted(before + missed)
    assert failures_left == [0]
    assert second.counters.trim_gaps == 1  # healed once, on the second try
    assert setup.broker.stats().trim_gaps == 2  # found twice
