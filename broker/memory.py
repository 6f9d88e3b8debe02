"""`MemoryBroker`: the single-process `EventBroker` for unit tests.

It delivers through the same `Fanout` as `RedisBroker`, and consumes through
the same `GroupConsumer`, so overflow, resync, redelivery and dead-lettering
behave identically; what it cannot show is anything about the network. Two
switches let tests of the layers above rehearse a broker outage without Redis:
`unavailable` (publish raises, ping says no) and `simulate_reconnect()` (every
subscriber gets the resync notice a real reconnect would give it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Unpack

from broker.durable import GroupConsumer
from broker.fanout import Fanout, FanoutSubscription
from broker.group_backend import ConsumeSettings, DurableCounters
from broker.memory_streams import MemoryGroupBackend, MemoryStream
from broker.protocol import (
    BrokerNotConnectedError,
    BrokerStats,
    BrokerStatus,
    BrokerUnavailableError,
    ConsumeOptions,
    DeadLetter,
    DurableConsumer,
    Subscription,
)
from broker.stats import collect_stats


class MemoryBroker:
    def __init__(self, default_queue_size: int = 256) -> None:
        self._fanout = Fanout(default_queue_size)
        self._status = BrokerStatus.DISCONNECTED
        self._stream = MemoryStream()
        self._durable = DurableCounters()
        self.unavailable = False

    @property
    def fanout(self) -> Fanout:
        return self._fanout

    @property
    def published(self) -> list[tuple[str, str]]:
        """The durable stream: (topic, payload) in publish order."""
        return self._stream.entries

    async def connect(self) -> None:
        if self._status is BrokerStatus.CLOSED:
            raise BrokerNotConnectedError("the broker was closed")
        self._status = BrokerStatus.CONNECTED

    async def close(self) -> None:
        self._status = BrokerStatus.CLOSED
        self._fanout.close_all()

    def status(self) -> BrokerStatus:
        return self._status

    def stats(self) -> BrokerStats:
        return collect_stats(self._fanout, self._durable)

    async def ping(self) -> bool:
        return self._status is BrokerStatus.CONNECTED and not self.unavailable

    async def publish(self, topic: str, payload: str) -> None:
        self._require_connected()
        if self.unavailable:
            raise BrokerUnavailableError("MemoryBroker.unavailable is set")
        self._stream.append(topic, payload)
        self._fanout.deliver(topic, payload)

    async def publish_many(self, topic: str, payloads: Sequence[str]) -> None:
        await self.publish_batch([(topic, payload) for payload in payloads])

    async def publish_batch(self, messages: Sequence[tuple[str, str]]) -> None:
        for topic, payload in messages:
            await self.publish(topic, payload)

    def subscribe(
        self, topic: str, *, queue_size: int | None = None
    ) -> AbstractAsyncContextManager[Subscription]:
        return self._subscription(topic, queue_size)

    def consume(
        self, group: str, *, consumer: str, **options: Unpack[ConsumeOptions]
    ) -> AbstractAsyncContextManager[DurableConsumer]:
        self._require_connected()
        return self._consumer(
            GroupConsumer(
                MemoryGroupBackend(self._stream, group=group, consumer=consumer),
                group=group,
                consumer=consumer,
                counters=self._durable,
                is_closed=lambda: self._status is BrokerStatus.CLOSED,
                settings=ConsumeSettings(**options),
            ),
        )

    async def dead_letters(self, count: int = 100) -> list[DeadLetter]:
        """The newest `count` dead letters, oldest first."""
        return self._stream.dead[-count:]

    def simulate_reconnect(self) -> None:
        """Push the resync notice a real broker sends after its connection came back."""
        self._fanout.resync_all()

    @asynccontextmanager
    async def _subscription(
        self, topic: str, queue_size: int | None
    ) -> AsyncIterator[FanoutSubscription]:
        self._require_connected()
        subscription, _first = self._fanout.add(topic, queue_size)
        try:
            yield subscription
        finally:
            self._fanout.remove(subscription)

    @asynccontextmanager
    async def _consumer(self, consumer: GroupConsumer) -> AsyncIterator[GroupConsumer]:
        await consumer.start()
        try:
            yield consumer
        finally:
            consumer.close()

    def _require_connected(self) -> None:
        if self._status is not BrokerStatus.CONNECTED:
            raise BrokerNotConnectedError(f"MemoryBroker is {self._status.value}")
