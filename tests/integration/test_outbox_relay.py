"""The outbox relay on the real Postgres and Redis: what it claims, in what order, when it wakes.

Broker outages are real: the relay's Redis connection goes through a proxy the
test takes down (tests/faults/proxy.py), never a fake broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from psycopg_pool import AsyncConnectionPool

from activities.recorder import EventRecorder
from broker import Subscription, topic_for
from broker.redis import RedisBroker
from schemas import EventEnvelope
from store import EventStore, Outbox, open_pool
from telemetry.metrics import Metrics
from tests.faults.harness import pending_rows
from tests.faults.proxy import fault_proxy
from tests.metrics_text import required
from tests.own_database import own_database
from tests.polling import until
from worker.relay import OutboxRelay, register_relay_metrics

FOREVER = timedelta(hours=1)


def progress(task_id: str, percent: float) -> EventEnvelope:
    return EventEnvelope(
        id=str(uuid.uuid4()),
        type="task.step.progress.v1",
        subject=task_id,
        time=datetime.now(UTC),
        data={"index": 1, "name": "s", "percent": percent, "total_steps": 1},
    )


async def orphans(pool: AsyncConnectionPool, per_task: int, tasks: int = 1) -> list[str]:
    """Tasks whose events are committed and never published (as after a crash)."""
    store = EventStore(pool)
    task_ids = [str(uuid.uuid4()) for _ in range(tasks)]
    for n in range(per_task):
        for task_id in task_ids:
            await store.append(progress(task_id, n))
    return task_ids


async def pending_sequences(pool: AsyncConnectionPool, task_id: str) -> list[int]:
    """The sequences of the task's outbox rows not published yet."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT seq FROM outbox WHERE task_id = %s AND published_at IS NULL ORDER BY seq",
            (task_id,),
        )
        return [int(row[0]) for row in await cursor.fetchall()]


def relay_for(pool: AsyncConnectionPool, broker: RedisBroker, **overrides: Any) -> OutboxRelay:
    options: dict[str, Any] = {
        "grace": FOREVER,
        "poll_interval": 30.0,
        "batch_size": 100,
        "publish_timeout": 0.3,
        "max_backoff": 30.0,
        **overrides,
    }
    return OutboxRelay(Outbox(pool), broker, **options)


@pytest.fixture
async def db_url(database_url: str) -> AsyncIterator[str]:
    """A database of this test's own: no other relay of the session takes its rows."""
    async with own_database(database_url, "relay") as url:
        yield url


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[AsyncConnectionPool]:
    the_pool = await open_pool(db_url, min_size=1, max_size=4)
    yield the_pool
    await the_pool.close()


@pytest.fixture
async def broker(redis_url: str) -> AsyncIterator[RedisBroker]:
    the_broker = RedisBroker(redis_url, publish_timeout=0.3, client_name="taskplane-relay-test")
    await the_broker.connect()
    yield the_broker
    await the_broker.close()


@contextlib.asynccontextmanager
async def running(relay: OutboxRelay, conninfo: str | None = None) -> AsyncIterator[None]:
    task = asyncio.create_task(relay.run(conninfo))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def received(subscription: Subscription, count: int, within: float = 5) -> list[int]:
    """The sequences of the next `count` messages on a subscription."""
    sequences: list[int] = []
    deadline = time.monotonic() + within
    while len(sequences) < count:
        delivery = await subscription.get(timeout=max(0.01, deadline - time.monotonic()))
        assert delivery is not None, f"only {sequences} arrived"
        if delivery.payload is not None:
            sequences.append(int(orjson.loads(delivery.payload)["sequence"]))
    return sequences


async def received_in_order(subscription: Subscription, count: int, within: float = 5) -> list[int]:
    """The first `count` sequences a consumer keeps: a repeat of one it has is dropped (as
    every consumer drops by sequence); one out of order is kept, and fails the caller."""
    kept: list[int] = []
    deadline = time.monotonic() + within
    while len(kept) < count:
        delivery = await subscription.get(timeout=max(0.01, deadline - time.monotonic()))
        assert delivery is not None, f"only {kept} arrived"
        if delivery.payload is not None:
            sequence = int(orjson.loads(delivery.payload)["sequence"])
            if sequence not in kept:
                kept.append(sequence)
    return kept


async def test_handed_over_rows_skip_the_grace_period_orphans_wait_for_it(
    pool: AsyncConnectionPool,
) -> None:
    outbox = Outbox(pool)
    (orphaned, handed) = await orphans(pool, 2, tasks=2)
    async with outbox.claim(grace=timedelta(0), limit=10_000) as batch:
        handed_row = next(e.outbox_id for e in batch.events if e.task_id == handed)
    await outbox.hand_over(handed_row, "publish failed")
    async with outbox.claim(grace=FOREVER, limit=10_000) as batch:
        claimed = [(e.task_id, e.sequence) for e in batch.events]
        assert (handed, 1) in claimed
        assert orphaned not in {t for t, _ in claimed}
    async with outbox.claim(grace=timedelta(0), limit=10_000) as batch:
        mine = [(e.task_id, e.sequence) for e in batch.events if e.task_id == orphaned]
        assert mine == [(orphaned, 1), (orphaned, 2)]  # oldest first
        await batch.mark_published([e.outbox_id for e in batch.events])


async def test_a_task_is_claimed_by_one_relay_at_a_time(
    pool: AsyncConnectionPool, db_url: str
) -> None:
    other_process = await open_pool(db_url, min_size=1, max_size=1)
    try:
        first, second = Outbox(pool), Outbox(other_process)
        task_ids = await orphans(pool, 3, tasks=2)
        async with first.claim(grace=timedelta(0), limit=10_000) as held:
            mine = [(e.task_id, e.sequence) for e in held.events if e.task_id in task_ids]
            assert sorted(mine) == sorted((t, s) for t in task_ids for s in (1, 2, 3))
            async with second.claim(grace=timedelta(0), limit=10_000) as other:
                assert not {e.task_id for e in other.events} & set(task_ids)
        # Released without marking: the next claim gets them again, still oldest first.
        async with second.claim(grace=timedelta(0), limit=10_000) as batch:
            again = [(e.task_id, e.sequence) for e in batch.events if e.task_id == task_ids[0]]
            assert again == [(task_ids[0], 1), (task_ids[0], 2), (task_ids[0], 3)]
            await batch.mark_published([e.outbox_id for e in batch.events])
    finally:
        await other_process.close()


async def test_two_relays_publish_each_task_once_in_order(
    pool: AsyncConnectionPool, db_url: str, redis_url: str, broker: RedisBroker
) -> None:
    task_ids = await orphans(pool, 12, tasks=3)
    other_pool = await open_pool(db_url, min_size=1, max_size=2)
    other_broker = RedisBroker(redis_url, publish_timeout=0.3, client_name="taskplane-relay-2")
    await other_broker.connect()
    relays = [
        relay_for(pool, broker, grace=timedelta(0), batch_size=5),
        relay_for(other_pool, other_broker, grace=timedelta(0), batch_size=5),
    ]
    try:
        async with contextlib.AsyncExitStack() as subscriptions:
            subs = [
                await subscriptions.enter_async_context(broker.subscribe(topic_for(t)))
                for t in task_ids
            ]

            async def drain(relay: OutboxRelay) -> None:
                # Until every row is out: a round that publishes nothing may only mean the
                # other relay holds the rows, or that a publish failed (timed out on a busy
                # machine) and waits for the next round.
                while True:
                    if (await relay.relay_once()).published:
                        continue
                    if not await pending_rows(pool, task_ids):
                        return
                    await asyncio.sleep(0.01)

            async with asyncio.timeout(60):
                await asyncio.gather(*(drain(r) for r in relays))
            repeated = sum(r.stats.failed for r in relays)  # a timed-out publish may have landed
            for sub in subs:
                assert await received_in_order(sub, 12) == list(range(1, 13))
                if not repeated:
                    assert await sub.get(timeout=0.2) is None  # and nothing twice
        assert sum(r.stats.published for r in relays) >= 36
    finally:
        await other_broker.close()
        await other_pool.close()


async def test_a_hand_over_in_another_process_wakes_the_relay_at_once(
    pool: AsyncConnectionPool, db_url: str, broker: RedisBroker
) -> None:
    relay = relay_for(pool, broker)  # polls every 30 s, takes orphans after an hour
    other_process = await open_pool(db_url, min_size=1, max_size=1)
    try:
        async with running(relay, db_url):
            await until(lambda: relay.listening and relay.stats.rounds >= 1, within=5)
            rounds = relay.stats.rounds  # its first round is over: it waits for 30 s now
            (task_id,) = await orphans(other_process, 2)
            async with broker.subscribe(topic_for(task_id)) as sub:
                async with Outbox(other_process).claim(grace=timedelta(0), limit=10_000) as b:
                    second = next(
                        e.outbox_id for e in b.events if (e.task_id, e.sequence) == (task_id, 2)
                    )
                await Outbox(other_process).hand_over(second, "publish failed")
                # Within 5 s: the relay's poll is 30 s away, so only the NOTIFY woke it.
                assert await received(sub, 1, within=5) == [2]

                # What the woken round left pending is what it did not publish: the orphan.
                # (Waited for, not read once: a round that began before the hand-over may
                # be counted first, while the one publishing 2 has not yet marked it.)
                async def only_the_orphan_pending() -> bool:
                    return await pending_sequences(other_process, task_id) == [1]

                await until(only_the_orphan_pending, what="2 marked published, 1 pending")
                assert relay.stats.rounds > rounds
    finally:
        await other_process.close()


async def test_back_off_while_the_broker_is_down_ends_when_a_publish_works_again(
    pool: AsyncConnectionPool, redis_url: str, broker: RedisBroker
) -> None:
    where = urlsplit(redis_url)
    async with fault_proxy(host=where.hostname, port=where.port) as proxy:
        proxied = RedisBroker(
            f"redis://127.0.0.1:{proxy.port}/0", publish_timeout=0.3, client_name="taskplane-p"
        )
        await proxied.connect()
        relay = relay_for(pool, proxied)
        recorder = EventRecorder(
            EventStore(pool), Outbox(pool), proxied, publish_timeout=0.3, publish_listener=relay
        )
        task_id = str(uuid.uuid4())

        async def record(percent: float) -> None:
            await recorder.record(
                event_id=str(uuid.uuid4()),
                task_id=task_id,
                event_type="task.step.progress.v1",
                data={"index": 1, "name": "s", "percent": percent, "total_steps": 1},
            )

        try:
            async with running(relay), broker.subscribe(topic_for(task_id)) as sub:
                await until(lambda: relay.stats.rounds >= 1, within=5)  # its first, empty round
                rounds = relay.stats.rounds
                await proxy.outage()
                for n in range(3):
                    await record(n)  # never fails, though nothing can be published
                # Woken by the first hand over (the poll is 30 s away), it failed: a round
                # ends with the back-off decided, so from here on it is backing off.
                await until(lambda: relay.stats.rounds > rounds, within=5)
                assert relay.stats.failed >= 1
                rounds = relay.stats.rounds
                await record(3)  # a hand over while backing off does not wake it ...
                await proxy.restore()
                await record(4)  # ... a publish that works again does (by the recorder)
                # Within 5 s: not after the 30 s back-off.
                assert sorted(await received(sub, 5, within=5)) == [1, 2, 3, 4, 5]
                await until(lambda: relay.stats.published >= 4)  # the four handed over
                # One round since: had the hand over woken it, a failed round came first.
                assert relay.stats.rounds == rounds + 1
        finally:
            await proxied.close()


async def test_the_backlog_and_counters_are_metrics(
    pool: AsyncConnectionPool, broker: RedisBroker
) -> None:
    relay, metrics = relay_for(pool, broker), Metrics()
    register_relay_metrics(metrics, relay)
    await orphans(pool, 2)
    # The oldest pending row is made 90 s old, so the age has a value to be right about.
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE outbox SET created_at = now() - interval '90 seconds'"
            " WHERE id = (SELECT min(id) FROM outbox WHERE published_at IS NULL)"
        )
    backlog = await relay.refresh_backlog()
    assert backlog.pending >= 2
    assert relay.stats.pending == backlog.pending
    # At least the 90 s set above; less than that plus the time this test has run.
    assert 90 <= backlog.oldest_age_seconds < 90 + 60
    scraped = metrics.text().decode()
    assert required(scraped, "taskplane_outbox_pending") == backlog.pending
    assert (
        required(scraped, "taskplane_outbox_oldest_pending_seconds") == backlog.oldest_age_seconds
    )
    assert required(scraped, "taskplane_relay_published_total") == 0
    assert required(scraped, "taskplane_relay_failed_total") == 0
    relay, metrics = relay_for(pool, broker, grace=timedelta(0)), Metrics()
    register_relay_metrics(metrics, relay)
    while (await relay.relay_once()).published:
        pass
    await relay.refresh_backlog()
    scraped = metrics.text().decode()
    assert required(scraped, "taskplane_outbox_pending") == relay.stats.pending == 0
    assert required(scraped, "taskplane_relay_published_total") == relay.stats.published >= 2
