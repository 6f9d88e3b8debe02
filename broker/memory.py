"""`MemoryBroker`: the single-process `EventBroker` for unit tests.

It delivers through the same `Fanout` as `RedisBroker`, so overflow and resync
behave identically; what it cannot show is anything about the network. Two
switches let tests of the layers above rehearse a broker outage without Redis:
`unavailable` (publish raises, ping says no) and `simulate_reconnect()` (every
subscriber gets the resync notice a real reconnect would give it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from broker.fanout import Fanout, FanoutSubscription
from broker.protocol import (
    BrokerNotConnectedError,
    BrokerStatus,
    BrokerUnavailableError,
    Subscription,
)


class MemoryBroker:
    def __init__(self, default_queue_size: int = 256) -> None:
        self._fanout = Fanout(default_queue_size)
        self._status = BrokerStatus.DISCONNECTED
        # Stands in for the durable stream: (topic, payload) in publish order.
        self.published: list[tuple[str, str]] = []
        self.unavailable = False

    @property
    def fanout(self) -> Fanout:
        return self._fanout

    async def connect(self) -> None:
        if self._status is BrokerStatus.CLOSED:
            raise BrokerNotConnectedError("the broker was closed")
        self._status = BrokerStatus.CONNECTED

    async def close(self) -> None:
        self._status = BrokerStatus.CLOSED
        self._fanout.close_all()

    def status(self) -> BrokerStatus:
        return self._status

    async def ping(self) -> bool:
        return self._status is BrokerStatus.CONNECTED and not self.unavailable

    async def publish(self, topic: str, payload: str) -> None:
        self._require_connected()
        if self.unavailable:
            raise BrokerUnavailableError("MemoryBroker.unavailable is set")
        self.published.append((topic, payload))
        self._fanout.deliver(topic, payload)

    def subscribe(
        self, topic: str, *, queue_size: int | None = None
    ) -> AbstractAsyncContextManager[Subscription]:
        return self._subscription(topic, queue_size)

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

    def _require_connected(self) -> None:
        if self._status is not BrokerStatus.CONNECTED:
            raise BrokerNotConnectedError(f"MemoryBroker is {self._status.value}")
