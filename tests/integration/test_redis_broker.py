"""`RedisBroker` against a real Redis: the broker contract, plus what only a server shows.

One pub/sub connection for everything, the durable stream, and surviving a
killed connection or a restarted server.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from broker import (
    BrokerStatus,
    BrokerUnavailableError,
    Delivery,
    RedisBroker,
    Subscription,
)
from broker.redis_streams import RedisGroupBackend
from devstack import EmbeddedRedis
from devstack.ports import free_port
from tests.broker_contract import (
    RESYNC,
    BrokerContract,
    BrokerFactory,
    drain,
    new_topic,
    next_message,
    receive,
    valid_event,
    wait_until_routed,
)
from tests.polling import until


def _broker(url: str) -> RedisBroker:
    # Unique names, so CLIENT LIST / CLIENT KILL only ever touch this test's connections
    # even when other suites' brokers share the session's Redis.
    test_id = uuid.uuid4().hex[:12]
    return RedisBroker(
        url, stream_key=f"taskplane:test:{test_id}", client_name=f"taskplane-test-{test_id}"
    )


async def _connections_of(admin: Redis, name: str, kind: str | None = None) -> list[dict[str, str]]:
    clients: list[dict[str, str]] = await admin.client_list(_type=kind)
    return [client for client in clients if client["name"].startswith(name)]


class TestRedisBroker(BrokerContract):
    @pytest.fixture
    def make_broker(self, redis_url: str) -> BrokerFactory:
        return lambda: _broker(redis_url)


@pytest.fixture
async def redis_broker(redis_url: str) -> AsyncIterator[RedisBroker]:
    broker = _broker(redis_url)
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.close()


async def test_200_subscriptions_over_50_topics_share_one_pubsub_connection(
    redis_broker: RedisBroker, admin: Redis
) -> None:
    pubsub_name = redis_broker.pubsub_client_name
    broker_prefix = pubsub_name.removesuffix("-pubsub")
    # Connected but not subscribed yet: no pub/sub connection (the worker's case).
    assert await _connections_of(admin, pubsub_name) == []
    connections_before = await _connections_of(admin, broker_prefix)

    topics = [new_topic() for _ in range(50)]
    subscriptions: list[Subscription] = []
    release = asyncio.Event()

    async def hold(topic: str) -> None:
        async with redis_broker.subscribe(topic) as subscription:
            subscriptions.append(subscription)
            await release.wait()

    async def all_confirmed() -> bool:
        return len(subscriptions) == 200

    holders = [asyncio.create_task(hold(topics[n % 50])) for n in range(200)]
    await until(all_confirmed, within=5)

    # 200 subscribers added ONE connection: the pub/sub connection, holding 50 channels.
    assert len(await _connections_of(admin, broker_prefix)) == len(connections_before) + 1
    (pubsub,) = await _connections_of(admin, broker_prefix, kind="pubsub")
    assert pubsub["name"] == pubsub_name
    assert int(pubsub["sub"]) == 50
    assert [count for _, count in await admin.pubsub_numsub(*topics)] == [1] * 50

    for topic in topics:
        await redis_broker.publish(topic, f"to {topic}")
    for subscription in subscriptions:
        assert await receive(subscription) == Delivery(payload=f"to {subscription.topic}")

    release.set()
    await asyncio.gather(*holders)

    async def all_unsubscribed() -> bool:
        return all(count == 0 for _, count in await admin.pubsub_numsub(*topics))

    await until(all_unsubscribed, within=5)
    assert redis_broker.fanout.topic_count == 0
    # The connection stays, idle, for the next subscriber.
    assert len(await _connections_of(admin, pubsub_name)) == 1


async def test_subscribe_returns_only_once_redis_confirmed(
    redis_broker: RedisBroker, admin: Redis
) -> None:
    topic = new_topic()
    # CLIENT PAUSE holds every client's next command, the broker's SUBSCRIBE
    # included, so an early return from subscribe() would show as a short wait.
    await admin.client_pause(300)
    started = time.monotonic()
    async with redis_broker.subscribe(topic):
        waited = time.monotonic() - started
        assert waited >= 0.25
        assert await admin.pubsub_numsub(topic) == [(topic, 1)]


async def test_publish_appends_to_the_stream(redis_url: str, admin: Redis) -> None:
    stream_key = f"taskplane:test:{uuid.uuid4()}"
    broker = RedisBroker(redis_url, stream_key=stream_key)
    await broker.connect()
    try:
        await broker.publish("task.1", '{"n": 1}')
        await broker.publish("task.2", '{"n": 2}')
        assert await admin.xlen(stream_key) == 2
        entries = await admin.xrange(stream_key)
        assert entries is not None
        assert [fields for _id, fields in entries] == [
            {"topic": "task.1", "payload": '{"n": 1}'},
            {"topic": "task.2", "payload": '{"n": 2}'},
        ]
    finally:
        await broker.close()
        await admin.delete(stream_key)


async def test_publishing_survives_a_script_flush(redis_url: str, admin: Redis) -> None:
    """The publish script (broker.redis_publish): a server that forgot it (SCRIPT FLUSH,
    as after a restart) is sent it again, and each message's PUBLISH and XADD stay in
    order, nothing lost."""
    stream_key = f"taskplane:test:{uuid.uuid4()}"
    broker = RedisBroker(redis_url, stream_key=stream_key)
    await broker.connect()
    first, second = new_topic(), new_topic()
    batch = [(first, '{"n": 1}'), (second, '{"n": 2}'), (first, '{"n": 3}')]
    try:
        async with broker.subscribe(first) as one, broker.subscribe(second) as other:
            await broker.publish_batch(batch)
            await admin.script_flush()
            await broker.publish_batch([(second, '{"n": 4}')])
            assert [(await receive(one)).payload for _ in range(2)] == ['{"n": 1}', '{"n": 3}']
            assert [(await receive(other)).payload for _ in range(2)] == ['{"n": 2}', '{"n": 4}']
        entries = await admin.xrange(stream_key)
        assert entries is not None
        assert [fields for _id, fields in entries] == [
            {"topic": topic, "payload": payload}
            for topic, payload in [*batch, (second, '{"n": 4}')]
        ]
    finally:
        await broker.close()
        await admin.delete(stream_key)


async def test_publishes_where_scripts_are_refused(redis_url: str, admin: Redis) -> None:
    """An ACL user without EVALSHA (or SCRIPT): publishing falls back to the pipeline."""
    user = f"tp-noscript-{uuid.uuid4().hex[:8]}"
    await admin.acl_setuser(
        user,
        enabled=True,
        nopass=True,
        commands=["+@all", "-evalsha", "-eval", "-script"],
        keys=["*"],
        channels=["*"],
    )
    stream_key = f"taskplane:test:{uuid.uuid4()}"
    scheme, rest = redis_url.split("://", 1)
    broker = RedisBroker(f"{scheme}://{user}:any@{rest}", stream_key=stream_key)
    await broker.connect()
    topic = new_topic()
    try:
        async with broker.subscribe(topic) as subscription:
            await broker.publish(topic, '{"n": 1}')
            await broker.publish_batch([(topic, '{"n": 2}'), (topic, '{"n": 3}')])
            received = [(await receive(subscription)).payload for _ in range(3)]
        assert received == ['{"n": 1}', '{"n": 2}', '{"n": 3}']
        assert await admin.xlen(stream_key) == 3
    finally:
        await broker.close()
        await admin.delete(stream_key)
        await admin.acl_deluser(user)


async def test_stream_is_capped(redis_url: str, admin: Redis) -> None:
    stream_key = f"taskplane:test:{uuid.uuid4()}"
    broker = RedisBroker(redis_url, stream_key=stream_key, stream_maxlen=10)
    await broker.connect()
    try:
        for n in range(300):
            await broker.publish("task.1", str(n))
        # MAXLEN ~ trims whole stream nodes (100 entries by default), never below 10.
        assert 10 <= await admin.xlen(stream_key) <= 110
    finally:
        await broker.close()
        await admin.delete(stream_key)


async def test_reconnects_after_the_pubsub_connection_is_killed(
    redis_broker: RedisBroker, admin: Redis
) -> None:
    topic_a, topic_b = new_topic(), new_topic()
    async with (
        redis_broker.subscribe(topic_a) as sub_a,
        redis_broker.subscribe(topic_a) as sub_a2,
        redis_broker.subscribe(topic_b) as sub_b,
    ):
        (pubsub,) = await _connections_of(admin, redis_broker.pubsub_client_name, "pubsub")
        assert await admin.client_kill_filter(_id=pubsub["id"], _type="pubsub") == 1

        # A resync notice when the connection is lost (so a stream can read the store
        # meanwhile) and one once re-subscribed; unread ones coalesce into one.
        for subscription in (sub_a, sub_a2, sub_b):
            assert await receive(subscription) == RESYNC

        async def reconnected() -> bool:
            return redis_broker.status() is BrokerStatus.CONNECTED and redis_broker.reconnects == 1

        await until(reconnected, within=5)
        for subscription in (sub_a, sub_a2, sub_b):
            assert set(await drain(subscription, quiet=0.3)) <= {RESYNC}

        await redis_broker.publish(topic_a, "after the break")
        assert await receive(sub_a) == Delivery(payload="after the break")
        assert await receive(sub_a2) == Delivery(payload="after the break")
        assert await sub_b.get(timeout=0.1) is None
        assert len(await _connections_of(admin, redis_broker.pubsub_client_name, "pubsub")) == 1


async def test_survives_a_redis_restart(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    broker = RedisBroker(url, publish_timeout=0.5, subscribe_timeout=1.0)
    topic = new_topic()

    async def down() -> bool:
        return broker.status() is not BrokerStatus.CONNECTED

    server = EmbeddedRedis(tmp_path, port)
    try:
        server.start()
        await broker.connect()
        async with broker.subscribe(topic) as subscription:
            server.stop()
            await until(down, within=5)
            assert await receive(subscription) == RESYNC  # told at once: read the store
            with pytest.raises(BrokerUnavailableError):
                await broker.publish(topic, "lost")
            assert await broker.ping() is False
            with pytest.raises(BrokerUnavailableError):
                async with broker.subscribe(new_topic()):
                    pass

            server.start()
            assert await receive(subscription, within=10) == RESYNC
            assert broker.status() is BrokerStatus.CONNECTED
            await broker.publish(topic, "back")
            assert await receive(subscription) == Delivery(payload="back")
    finally:
        await broker.close()
        server.stop()


async def test_starts_while_redis_is_down_and_leaves_no_task_behind() -> None:
    tasks_before = asyncio.all_tasks()
    broker = RedisBroker(f"redis://127.0.0.1:{free_port()}/0", subscribe_timeout=0.3)
    await broker.connect()
    assert broker.status() in {BrokerStatus.DISCONNECTED, BrokerStatus.CONNECTING}
    assert await broker.ping() is False
    with pytest.raises(BrokerUnavailableError):
        await broker.publish(new_topic(), "{}")
    with pytest.raises(BrokerUnavailableError):
        async with broker.subscribe(new_topic()):
            pass
    await broker.close()
    assert broker.status() is BrokerStatus.CLOSED
    assert asyncio.all_tasks() - tasks_before == set()


async def test_flooding_a_slow_subscriber_does_not_grow_memory(
    redis_broker: RedisBroker,
) -> None:
    topic = new_topic()
    filler = "x" * 4096
    async with (
        redis_broker.subscribe(topic, queue_size=4) as slow,
        redis_broker.subscribe(new_topic()) as marker,
    ):
        await redis_broker.publish(topic, "warm-up")
        await wait_until_routed(redis_broker, marker)
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            for n in range(1000):  # ~4 MiB of distinct payloads
                await redis_broker.publish(topic, f"{n:06d}{filler}")
            await wait_until_routed(redis_broker, marker)
            after, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert after - before < 512 * 1024
        assert redis_broker.fanout.buffered <= 4 + 1
        assert (await receive(slow)).payload == "warm-up"


async def test_idle_consumers_with_nothing_pending_are_forgotten(redis_url: str) -> None:
    broker = _broker(redis_url)
    await broker.connect()
    commands = Redis.from_url(redis_url)
    stream = broker.stream_key
    try:
        async with broker.consume("g", consumer="done", block_seconds=0.05) as done:
            await broker.publish(new_topic(), valid_event())
            await done.ack(await next_message(done))
        async with broker.consume("g", consumer="holding", block_seconds=0.05) as holding:
            await broker.publish(new_topic(), valid_event())
            await next_message(holding)  # never acknowledged: it must stay
        backend = RedisGroupBackend(
            commands,
            commands,
            stream_key=stream,
            dead_key=broker.dead_letter_key,
            dead_maxlen=10,
            group="g",
            consumer="pruner",
        )
        assert await backend.forget_idle_consumers(0) == 1
        consumers = await commands.xinfo_consumers(stream, "g")
        assert [c["name"] for c in consumers] == [b"holding"]
    finally:
        await commands.delete(stream)
        await commands.aclose()
        await broker.close()
