"""The same event published twice (or three times) → every consumer sees it once.

Duplicates come from two real sources at once: a republisher that publishes every
stored event a second time while the tasks run (the way a relay racing a slow
recorder would), and, after the tasks ended, the relay itself, after their outbox
rows were set back to pending. The SSE clients drop what they already sent by
sequence; the durable handler's processed-event mark turns a redelivery into an
acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib

from psycopg_pool import AsyncConnectionPool

from broker import topic_for
from broker.redis import RedisBroker
from tests.faults.harness import (
    BrokerStreamView,
    collector,
    create_task,
    fault_settings,
    pending_rows,
    watch,
    worker_and_api,
)
from tests.invariants import load_history, wait_until_delivered
from tests.metrics_text import required
from tests.polling import until


async def republish_everything(
    pool: AsyncConnectionPool, broker: RedisBroker, task_ids: list[str], done: asyncio.Event
) -> int:
    """Publish every stored event of the tasks once more, as it appears; until `done`."""
    republished: set[str] = set()
    while True:
        finished = done.is_set()
        async with pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT event_id, task_id, envelope FROM events WHERE task_id = ANY(%s)"
                " ORDER BY recorded_at DESC",  # newest first: duplicates also out of order
                (task_ids,),
            )
            rows = await cursor.fetchall()
        for event_id, task_id, envelope in rows:
            if event_id not in republished:
                await broker.publish(topic_for(task_id), envelope)
                republished.add(event_id)
        if finished:
            return len(republished)
        await asyncio.sleep(0.05)


async def test_every_consumer_sees_a_twice_published_event_once(
    truth: AsyncConnectionPool, fault_db: str, redis_url: str, temporal_address: str
) -> None:
    settings = fault_settings(
        database_url=fault_db, redis_url=redis_url, temporal_address=temporal_address
    )
    group = f"faults-dup-{settings.task_queue}"
    stream = BrokerStreamView(redis_url)
    republisher = RedisBroker(redis_url, client_name="taskplane-faults-republisher")
    await republisher.connect()
    try:
        async with worker_and_api(settings, stream, group=group) as (worker, http):
            task_ids = [await create_task(http) for _ in range(2)]
            watchers = [w for task_id in task_ids for w in watch(http, task_id)]
            done = asyncio.Event()
            echo = asyncio.create_task(republish_everything(truth, republisher, task_ids, done))
            collect = collector(truth, task_ids, watchers, group, stream)
            history, _ = await wait_until_delivered(collect, tasks=task_ids, within=30)
            done.set()
            republished = await echo
            assert republished == len(history)

            # Third time, by the relay: the rows look unpublished again.
            async with truth.connection() as conn:
                await conn.execute(
                    "UPDATE outbox SET published_at = NULL WHERE task_id = ANY(%s)", (task_ids,)
                )
            relayed = worker.relay.stats.published

            async def relayed_again() -> bool:
                return await pending_rows(truth, task_ids) == 0

            await until(relayed_again, within=10)
            assert worker.relay.stats.published >= relayed + len(history)
            await wait_until_delivered(collect, tasks=task_ids, within=15, settle=0.5)

            # The duplicates did reach the consumers, which dropped them.
            on_broker = await stream.events(task_ids)
            assert len(on_broker) >= 3 * len(history)
            scraped = (await http.get("/metrics")).text
            assert required(scraped, "taskplane_sse_duplicates_dropped_total") > 0
            counters = worker.handlers.counters

            async def every_copy_acknowledged() -> bool:
                return counters.duplicates >= 2 * len(history)

            await until(every_copy_acknowledged, within=10)
            assert counters.handled >= len(history)
            for watcher in watchers:
                assert watcher.status == 200
                await watcher.stop()
            history_again = await load_history(truth, task_ids)
            assert history_again == history
    finally:
        with contextlib.suppress(Exception):
            await republisher.close()
        await stream.close()
