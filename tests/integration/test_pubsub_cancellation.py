"""A subscriber cancelled while its SUBSCRIBE is in flight must not break the topic.

Issue 23: the shared pub/sub connection counted a SUBSCRIBE as outstanding and
then sent it from the subscriber's own task; cancelling that task mid-send left
the count raised, and every later subscriber of the topic on that process
waited for a confirmation that could never come. These tests put the
cancellation exactly there (a PubSub whose SUBSCRIBE send is slowed down, a
public subclass of redis-py's `PubSub`), and then churn thousands of
subscriptions with random cancellation points over real Redis.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from broker.fanout import Fanout
from broker.redis_pubsub import SharedPubSub
from tests.polling import until

SEND_DELAY = 0.05


class SlowSubscribePubSub(PubSub):
    """Takes `SEND_DELAY` before sending a SUBSCRIBE, as a busy connection would."""

    async def execute_command(self, *args: Any) -> None:
        if args and str(args[0]).upper() == "SUBSCRIBE":
            await asyncio.sleep(SEND_DELAY)
        await super().execute_command(*args)


class SlowSubscribeRedis(Redis):
    def pubsub(self, **kwargs: Any) -> PubSub:
        return SlowSubscribePubSub(self.connection_pool, **kwargs)


def _client(redis_url: str, cls: type[Redis] = Redis) -> Redis:
    # As RedisBroker builds its pub/sub client: the reader's PING replaces redis-py's check.
    return cls.from_url(redis_url, health_check_interval=0)


async def _shared(client: Redis) -> tuple[SharedPubSub, Fanout]:
    fanout = Fanout()
    shared = SharedPubSub(client, fanout, subscribe_timeout=5.0, health_check_interval=1.0)
    return shared, fanout


async def _hold(shared: SharedPubSub, topic: str, entered: asyncio.Event | None = None) -> None:
    async with shared.subscription(topic, None):
        if entered is not None:
            entered.set()
        await asyncio.Event().wait()


async def _entered(holder: asyncio.Task[None], entered: asyncio.Event) -> None:
    """Wait until `holder` holds its subscription, or raise what ended it."""
    waiter = asyncio.create_task(entered.wait())
    await asyncio.wait({holder, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if holder.done():
        holder.result()  # raises the subscription's failure
        raise AssertionError("the holder ended without holding its subscription")


async def _confirm_once(shared: SharedPubSub, topic: str) -> float:
    """Seconds from asking to the broker's confirmation of a fresh subscription."""
    started = time.perf_counter()
    async with shared.subscription(topic, None):
        return time.perf_counter() - started


async def test_a_subscriber_cancelled_while_its_subscribe_is_sent_leaves_the_topic_usable(
    redis_url: str,
) -> None:
    client = _client(redis_url, SlowSubscribeRedis)
    shared, _ = await _shared(client)
    topic = f"task.{uuid.uuid4()}"
    try:
        # Warm the connection first, so the first subscriber is not waiting for the reader.
        await _confirm_once(shared, f"task.{uuid.uuid4()}")
        vanishing = asyncio.create_task(_hold(shared, topic))
        await asyncio.sleep(SEND_DELAY / 5)  # inside the slowed SUBSCRIBE send
        vanishing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await vanishing
        # The next viewer of the same task must get its confirmation.
        await _confirm_once(shared, topic)
    finally:
        await shared.stop()
        await client.aclose()


async def _numsub(admin: Redis, topics: list[str]) -> dict[str, int]:
    counts = await admin.pubsub_numsub(*topics)
    return {str(topic): count for topic, count in counts}


async def test_churn_of_vanishing_subscribers_keeps_every_topic_confirmable(
    redis_url: str, admin: Redis
) -> None:
    """Thousands of subscribe/vanish cycles, cancelled at random points; then every topic
    confirms at once and Redis holds exactly the subscriptions that are alive."""
    client = _client(redis_url)
    shared, fanout = await _shared(client)
    topics = [f"task.churn.{uuid.uuid4()}" for _ in range(4)]
    rng = random.Random(23)  # fixed: a failure reproduces
    try:
        cycles = 0
        for _round in range(50):
            tasks = []
            for _ in range(40):
                tasks.append(asyncio.create_task(_hold(shared, rng.choice(topics))))
            # Cancel each at a random point: before its SUBSCRIBE, while it is sent,
            # while it waits for the confirmation, or once it holds the subscription.
            for task in tasks:
                if rng.random() < 0.5:
                    await asyncio.sleep(0)
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            cycles += len(tasks)
        assert cycles == 2000
        # Two topics stay watched, two are left with nobody.
        alive_topics = topics[:2]
        holders = {topic: asyncio.Event() for topic in alive_topics}
        alive = [asyncio.create_task(_hold(shared, t, holders[t])) for t in alive_topics]
        for task, event in zip(alive, holders.values(), strict=True):
            await _entered(task, event)
        # A topic wedged by a SUBSCRIBE counted but never sent is never confirmed on this
        # connection: `subscription()` raises BrokerUnavailableError after the subscribe
        # timeout, which fails the test; no wall-clock bound is needed to see it.
        for topic in topics:
            await _confirm_once(shared, topic)
        assert set(fanout.topics()) == set(alive_topics)

        async def redis_holds_exactly_the_live_topics() -> bool:
            counts = await _numsub(admin, topics)
            return all(counts[t] == (1 if t in alive_topics else 0) for t in topics)

        # UNSUBSCRIBEs are flushed off the caller's task: wait for Redis to reflect them.
        await until(redis_holds_exactly_the_live_topics, within=5)
        for task in alive:
            task.cancel()
        await asyncio.gather(*alive, return_exceptions=True)
    finally:
        await shared.stop()
        await client.aclose()
