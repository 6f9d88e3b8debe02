"""The Redis Cluster watchdog stops even when its slot-map read swallowed the cancel.

redis-py's `execute_command` can return normally when a cancellation lands in it (the
CI hang of stop 32: `RedisClusterBroker.close()` waited 180 s for a watchdog that ran
on). The topology below does what redis-py did, once; `stop()` must still return.
"""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from broker.cluster_pubsub import ShardedPubSub
from broker.cluster_topology import Address, ClusterTopology
from broker.fanout import Fanout
from broker.protocol import BrokerNotConnectedError


class SwallowingTopology:
    """A map that never names a primary and whose read swallows its first cancel."""

    ready = False

    def __init__(self) -> None:
        self.reading = asyncio.Event()
        self.swallowed = 0

    def primary_for(self, channel: str) -> Address | None:
        return None

    def primaries(self) -> set[Address]:
        return set()

    async def refresh(self) -> bool:
        self.reading.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if self.swallowed:
                raise
            self.swallowed += 1  # returns as if CLUSTER SLOTS had answered
        return False


async def test_stop_returns_when_the_watchdog_swallowed_its_cancel() -> None:
    topology = SwallowingTopology()
    pubsub = ShardedPubSub(
        cast(ClusterTopology, topology),
        Fanout(),
        subscribe_timeout=60,
        health_check_interval=1,
        topology_interval=60,
        failover_poll=0.01,
        client_name="test",
    )

    async def subscribe() -> None:
        async with pubsub.subscription("task.x", None):
            pass

    waiting = asyncio.create_task(subscribe())  # no primary: the watchdog reads the map
    await asyncio.wait_for(topology.reading.wait(), 5)
    await asyncio.wait_for(pubsub.stop(), 10)
    assert topology.swallowed == 1
    assert pubsub.readers() == []
    with pytest.raises(BrokerNotConnectedError):  # the subscription learns the broker closed
        await asyncio.wait_for(waiting, 5)
