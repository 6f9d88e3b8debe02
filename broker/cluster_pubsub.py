"""Live fan-out over a Redis Cluster: sharded pub/sub, one reader per primary, a watchdog.

Every live subscription of the process shares the broker's one `Fanout`, as with a
single Redis; what differs is the wire. A topic is a shard channel (SPUBLISH /
SSUBSCRIBE), living in the shard that owns its slot (task topics are `task.<uuid>`:
their slots, hence their primaries, are spread evenly). For each primary that serves
a subscribed topic there is one `NodeReader` (broker/cluster_node_reader.py): one
connection, one reader task. Classic PUBLISH would be broadcast to every node of the
cluster; SPUBLISH stays in its shard.

The watchdog (one task) keeps topics on the primary that serves them. It re-reads the
slot map (`ClusterTopology`) when a reader fails, and every `topology_interval`
seconds while anything is subscribed — a primary that is stopped rather than killed
never breaks the connection, and the failover that replaces it shows only in the map.
Then it stops readers of nodes that no longer serve slots (and failed ones), moves
every topic whose slot moved, and starts readers as needed. A moved topic's
subscribers were told to resync when its old reader went, and are told again once its
new subscription is confirmed: what pub/sub dropped in between (at most once, as
Redis documents) is read from the store, which stays the truth. A reader that cannot
connect (the map still names a dead primary) fails at once and the watchdog tries
again: while any reader is failing (or a topic has none), the map is re-read every
`failover_poll` seconds (0.2 by default, jittered down to half), until it names the
new primary.

`subscription()` returns once the topic's current reader confirmed it; a topic with no
reader yet (no map, its primary unreachable) waits for the watchdog, up to
`subscribe_timeout`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from redis.exceptions import RedisError

from broker.backoff import BACKOFF_INITIAL, jittered
from broker.cancelling import cancel_until_done
from broker.cluster_node_reader import NodeReader
from broker.cluster_topology import Address, ClusterTopology
from broker.fanout import Fanout, FanoutSubscription
from broker.protocol import BrokerNotConnectedError, BrokerStatus, BrokerUnavailableError

logger = logging.getLogger(__name__)

CONFIRMATION_CHECK_SECONDS = 0.1
# The watchdog's longest pause between failed reads of the map (no node answered).
WATCHDOG_BACKOFF_CAP = 0.5


class ShardedPubSub:
    def __init__(
        self,
        topology: ClusterTopology,
        fanout: Fanout,
        *,
        subscribe_timeout: float,
        health_check_interval: float,
        topology_interval: float,
        failover_poll: float = 0.2,
        client_name: str,
        credentials: tuple[str | None, str | None] = (None, None),
    ) -> None:
        self._topology = topology
        self._fanout = fanout
        self._subscribe_timeout = subscribe_timeout
        self._health_check_interval = health_check_interval
        self._topology_interval = topology_interval
        self._failover_poll = failover_poll
        self._client_name = client_name
        self._credentials = credentials
        self._readers: dict[Address, NodeReader] = {}
        self._owner: dict[str, NodeReader] = {}
        self._unassigned: set[str] = set()
        self._repair = asyncio.Event()
        self._watchdog: asyncio.Task[None] | None = None
        self._stopped = False
        self._map_failed = False
        self.resubscriptions = 0  # topics moved to a new reader (metrics, figures)
        self.reader_failures = 0  # readers whose connection ended
        self.readers_replaced = 0  # readers dropped: failed, or their node serves no slots

    @property
    def started(self) -> bool:
        return self._watchdog is not None

    @property
    def status(self) -> BrokerStatus:
        if self._stopped:
            return BrokerStatus.CLOSED
        if self._map_failed:
            return BrokerStatus.DISCONNECTED
        if self._unassigned or any(not r.connected for r in self._readers.values()):
            return BrokerStatus.CONNECTING
        return BrokerStatus.CONNECTED

    @property
    def reconnects(self) -> int:
        """Live connections lost or abandoned (`BrokerStats.reconnects`)."""
        return self.readers_replaced

    def readers(self) -> list[Address]:
        """The primaries this process holds a pub/sub connection to."""
        return sorted(self._readers)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._fanout.close_all()
        self._repair.set()  # a watchdog that swallowed its cancel sees `_stopped` at once
        await cancel_until_done((self._watchdog,))
        readers = list(self._readers.values())
        self._readers.clear()
        await asyncio.gather(*(reader.stop() for reader in readers), return_exceptions=True)

    @asynccontextmanager
    async def subscription(
        self, topic: str, queue_size: int | None
    ) -> AsyncIterator[FanoutSubscription]:
        if self._stopped:
            raise BrokerNotConnectedError("the broker was closed")
        if self._watchdog is None:
            self._watchdog = asyncio.create_task(self._watch(), name="taskplane-cluster-watchdog")
        subscription, first = self._fanout.add(topic, queue_size)
        try:
            if first:
                self._assign(topic, resync=False)
            await self._wait_confirmed(topic)
            yield subscription
        finally:
            self._release(subscription)  # synchronous, as in SharedPubSub

    async def _wait_confirmed(self, topic: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._subscribe_timeout
        while not self._stopped:
            reader = self._owner.get(topic)
            if reader is not None and reader.topics.is_confirmed(topic):
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise BrokerUnavailableError(
                    f"Redis Cluster did not confirm the subscription to {topic!r} within "
                    f"{self._subscribe_timeout} s (pub/sub is {self.status.value})"
                )
            # The topic may move to another reader meanwhile: look again now and then.
            wait = min(remaining, CONFIRMATION_CHECK_SECONDS)
            if reader is None or topic not in reader.topics:
                await asyncio.sleep(wait)
                continue
            with suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await reader.topics.confirmation(topic).wait()
        raise BrokerNotConnectedError("the broker was closed")

    def _release(self, subscription: FanoutSubscription) -> None:
        topic = subscription.topic
        if not self._fanout.remove(subscription):
            return
        self._unassigned.discard(topic)
        reader = self._owner.pop(topic, None)
        if reader is not None and not self._stopped:
            reader.remove(topic)

    def _assign(self, topic: str, *, resync: bool) -> None:
        if self._stopped:
            return  # a watchdog that swallowed its cancel must not open readers anew
        address = self._topology.primary_for(topic) if self._topology.ready else None
        if address is None:
            self._unassigned.add(topic)
            self._repair.set()
            return
        reader = self._readers.get(address)
        if reader is None:
            reader = self._readers[address] = NodeReader(
                address,
                self._fanout,
                timeout=self._subscribe_timeout,
                health_check_interval=self._health_check_interval,
                client_name=f"{self._client_name}-pubsub",
                on_failure=self._on_failure,
                credentials=self._credentials,
            )
            reader.start()
        self._unassigned.discard(topic)
        self._owner[topic] = reader
        reader.add(topic, resync=resync)

    def _on_failure(self, reader: NodeReader) -> None:
        self.reader_failures += 1
        self._repair.set()

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        delay = BACKOFF_INITIAL  # between failed reads of the map (no node answered)
        next_read = 0.0  # while unhealthy, the map is read at most every `failover_poll`
        while not self._stopped:
            if not self._readers and not self._unassigned:
                await self._repair.wait()  # nothing subscribed: no polling
            if self._healthy():
                with suppress(TimeoutError):
                    async with asyncio.timeout(self._topology_interval):
                        await self._repair.wait()
            # A reader failing or a topic without one: poll the map until it names the
            # new primary (a failover takes the node timeout), one read a poll period.
            await asyncio.sleep(max(0.0, next_read - loop.time()))
            self._repair.clear()
            next_read = loop.time() + jittered(self._failover_poll)
            try:
                await self._topology.refresh()
                self._map_failed = False
                delay = BACKOFF_INITIAL
            except (RedisError, OSError) as exc:
                self._map_failed = True
                logger.warning("Redis Cluster slot map not read (%s); retrying", exc)
                await asyncio.sleep(jittered(delay))
                delay = min(delay * 2, WATCHDOG_BACKOFF_CAP)
                self._repair.set()
                continue
            await self._rebalance()

    def _healthy(self) -> bool:
        return not self._unassigned and all(r.connected for r in self._readers.values())

    async def _rebalance(self) -> None:
        """Move every topic to the primary serving its slot now; drop dead readers."""
        moving: list[str] = sorted(self._unassigned)
        primaries = self._topology.primaries()
        for address, reader in list(self._readers.items()):
            if reader.failed or address not in primaries:
                del self._readers[address]
                self.readers_replaced += 1
                moving.extend(reader.topics.wanted())
                await reader.stop()
                continue
            for topic in reader.topics.wanted():
                if self._topology.primary_for(topic) != address:
                    reader.remove(topic)
                    moving.append(topic)
        for topic in moving:
            self._owner.pop(topic, None)
            if topic in self._fanout:
                self.resubscriptions += 1
                self._assign(topic, resync=True)
