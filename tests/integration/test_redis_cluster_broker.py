"""`RedisClusterBroker` on a real local Redis Cluster (3 primaries + 3 replicas): the broker
contract, plus what only a cluster shows — one reader per primary, sharded channels,
partition streams spread over the primaries.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from broker import Delivery
from broker.redis_cluster import RedisClusterBroker
from tests.broker_contract import BrokerContract, BrokerFactory, new_topic, receive
from tests.polling import until
from tests.redis_cluster import LocalCluster, redis_cluster  # noqa: F401 -- a fixture


def cluster_broker(url: str, **options: object) -> RedisClusterBroker:
    test_id = uuid.uuid4().hex[:12]
    return RedisClusterBroker(
        url,
        stream_key=f"taskplane:test:{test_id}",
        client_name=f"taskplane-test-{test_id}",
        **options,  # type: ignore[arg-type]
    )


class TestRedisClusterBroker(BrokerContract):
    @pytest.fixture
    def make_broker(self, redis_cluster: LocalCluster) -> BrokerFactory:  # noqa: F811
        return lambda: cluster_broker(redis_cluster.url)


@pytest.fixture
async def broker(redis_cluster: LocalCluster) -> AsyncIterator[RedisClusterBroker]:  # noqa: F811
    the_broker = cluster_broker(redis_cluster.url)
    await the_broker.connect()
    try:
        yield the_broker
    finally:
        await the_broker.close()


async def test_one_reader_per_primary_serves_topics_on_every_primary(
    broker: RedisClusterBroker,
    redis_cluster: LocalCluster,  # noqa: F811
) -> None:
    topics = [new_topic() for _ in range(60)]
    async with asyncio.TaskGroup() as group:
        release = asyncio.Event()
        ready: list[object] = []

        async def hold(topic: str) -> None:
            async with broker.subscribe(topic) as subscription:
                ready.append(subscription)
                await release.wait()
                await broker.publish(topic, f"to {topic}")
                assert await receive(subscription) == Delivery(payload=f"to {topic}")

        for topic in topics:
            group.create_task(hold(topic))
        await until(lambda: len(ready) == len(topics), within=10, what="every subscription")
        primaries = {node.port for node in redis_cluster.primaries()}
        assert {port for _, port in broker.pubsub.readers()} == primaries
        release.set()
