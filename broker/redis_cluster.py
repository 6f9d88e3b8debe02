"""`RedisClusterBroker`: the `EventBroker` on a Redis Cluster (or Valkey in cluster mode).

Chosen with `TASKPLANE_REDIS_CLUSTER=true`; `TASKPLANE_REDIS_URL` names any node.
The same contract as `RedisBroker` (broker/redis.py), on other wire commands:

- `publish`: SPUBLISH to the topic's shard channel and XADD to the topic's partition
  stream, one pipeline (redis-py's cluster pipeline sends each to its node, at once).
- `subscribe`: sharded pub/sub, one connection and reader per primary, kept on the
  primaries that serve their channels by a watchdog (broker/cluster_pubsub.py).
- `consume`: consumer groups on every partition stream (broker/cluster_streams.py).

Every redis-py error becomes `BrokerUnavailableError` here, as in `RedisBroker`.
Per-task order holds everywhere; order across tasks in the durable stream does not.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Unpack
from urllib.parse import urlsplit

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from broker.cluster_pubsub import ShardedPubSub
from broker.cluster_streams import PartitionedGroupBackend, Partitions, message_prefix
from broker.cluster_topology import ClusterTopology, cluster_client
from broker.durable import GroupConsumer
from broker.fanout import Fanout
from broker.group_backend import ConsumeSettings, DurableCounters
from broker.protocol import (
    BrokerNotConnectedError,
    BrokerStats,
    BrokerStatus,
    BrokerUnavailableError,
    ConsumeOptions,
    DeadLetter,
    DurableConsumer,
    Subscription,
    id_key,
)
from broker.redis_stream_reports import (
    StreamBacklog,
    read_backlog,
    read_dead_letter_entries,
)
from broker.redis_streams import RedisGroupBackend
from broker.stats import collect_stats

DEAD_LETTER_MAXLEN = 10_000
COMMAND_ERRORS = (RedisError, RedisClusterException, OSError)


class RedisClusterBroker:
    def __init__(
        self,
        url: str,
        *,
        stream_key: str = "taskplane:events",
        stream_maxlen: int = 100_000,
        partitions: int = 12,
        default_queue_size: int = 256,
        publish_timeout: float = 1.0,
        subscribe_timeout: float = 5.0,
        health_check_interval: float = 15.0,
        topology_interval: float = 1.0,
        failover_poll: float = 0.2,
        client_name: str = "taskplane",
    ) -> None:
        self._url = url
        self._partitions = Partitions(stream_key, partitions)
        # The cap holds for the whole stream, as with one Redis: each partition gets its share.
        self._stream_maxlen = max(1, -(-stream_maxlen // partitions))
        self._publish_timeout = publish_timeout
        self._client_name = client_name
        self._failover_poll = failover_poll
        self._fanout = Fanout(default_queue_size)
        self._durable = DurableCounters()
        parts = urlsplit(url)
        self._topology = ClusterTopology(url, timeout=publish_timeout)
        self._shared = ShardedPubSub(
            self._topology,
            self._fanout,
            subscribe_timeout=subscribe_timeout,
            health_check_interval=health_check_interval,
            topology_interval=topology_interval,
            failover_poll=failover_poll,
            client_name=client_name,
            credentials=(parts.username, parts.password),
        )
        self._commands: RedisCluster | None = None
        self._readers: set[RedisCluster] = set()
        self._command_status = BrokerStatus.DISCONNECTED
        self._closed = False

    @property
    def fanout(self) -> Fanout:
        return self._fanout

    @property
    def pubsub(self) -> ShardedPubSub:
        """The live fan-out's readers and watchdog (their counters are figures)."""
        return self._shared

    @property
    def failover_poll(self) -> float:
        """Seconds between slot-map reads and durable retries while a primary is lost."""
        return self._failover_poll

    @property
    def partitions(self) -> Partitions:
        """The partition streams every publish appends to (one per topic)."""
        return self._partitions

    @property
    def reconnects(self) -> int:
        return self._shared.reconnects

    async def connect(self) -> None:
        """Make the clients and probe the cluster once; never fails because it is down."""
        if self._closed:
            raise BrokerNotConnectedError("the broker was closed")
        if self._commands is None:
            self._commands = cluster_client(
                self._url,
                timeout=self._publish_timeout,
                client_name=f"{self._client_name}-publish",
                refresh_interval=self._failover_poll,
            )
            with suppress(*COMMAND_ERRORS):
                await self._topology.refresh()
        await self._probe()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._shared.stop()
        self._fanout.close_all()
        for client in (self._commands, *self._readers):
            if client is not None:
                with suppress(*COMMAND_ERRORS):
                    await client.aclose()
        self._readers.clear()

    def status(self) -> BrokerStatus:
        if self._closed:
            return BrokerStatus.CLOSED
        if self._commands is None:
            return BrokerStatus.DISCONNECTED
        if self._shared.started:
            return self._shared.status
        return self._command_status

    def stats(self) -> BrokerStats:
        return collect_stats(self._fanout, self._durable, reconnects=self.reconnects)

    async def ping(self) -> bool:
        if self._closed or self._commands is None:
            return False
        if not await self._probe():
            return False
        return not self._shared.started or self._shared.status is BrokerStatus.CONNECTED

    async def publish(self, topic: str, payload: str) -> None:
        await self.publish_many(topic, (payload,))

    async def publish_many(self, topic: str, payloads: Sequence[str]) -> None:
        await self.publish_batch([(topic, payload) for payload in payloads])

    async def publish_batch(self, messages: Sequence[tuple[str, str]]) -> None:
        commands = self._require_commands()
        topic = messages[0][0] if messages else ""  # named in errors: the first
        try:
            async with asyncio.timeout(self._publish_timeout):
                async with commands.pipeline(transaction=False) as pipe:
                    for to, payload in messages:
                        pipe.spublish(to, payload)
                        pipe.xadd(
                            self._partitions.key(self._partitions.of(to)),
                            {"topic": to, "payload": payload},
                            maxlen=self._stream_maxlen,
                            approximate=True,
                        )
                    await pipe.execute()
        except TimeoutError as exc:
            self._command_status = BrokerStatus.DISCONNECTED
            raise BrokerUnavailableError(
                f"publish to {topic!r} timed out after {self._publish_timeout} s"
            ) from exc
        except COMMAND_ERRORS as exc:
            self._command_status = BrokerStatus.DISCONNECTED
            raise BrokerUnavailableError(f"publish to {topic!r} failed: {exc}") from exc
        self._command_status = BrokerStatus.CONNECTED

    def subscribe(
        self, topic: str, *, queue_size: int | None = None
    ) -> AbstractAsyncContextManager[Subscription]:
        if self._closed or self._commands is None:
            raise BrokerNotConnectedError(f"RedisClusterBroker is {self.status().value}")
        return self._shared.subscription(topic, queue_size)

    def consume(
        self, group: str, *, consumer: str, **options: Unpack[ConsumeOptions]
    ) -> AbstractAsyncContextManager[DurableConsumer]:
        self._require_commands()
        return self._consuming(group, consumer, ConsumeSettings(**options))

    async def dead_letters(self, count: int = 100) -> list[DeadLetter]:
        """The newest `count` dead letters over every partition, oldest first."""
        commands = self._require_commands()
        entries = []
        for index in self._partitions:
            for entry_id, letter in await read_dead_letter_entries(
                commands, self._partitions.dead_key(index), count
            ):
                entries.append((id_key(entry_id), index, letter))
        entries.sort(key=lambda entry: entry[:2])
        return [letter for _, _, letter in entries[-count:]]

    async def stream_backlog(self) -> StreamBacklog:
        """Every partition's length and each group's backlog on it (labelled by partition)."""
        commands = self._require_commands()
        lengths, groups = [], []
        try:
            for index in self._partitions:
                backlog = await read_backlog(
                    commands, self._partitions.key(index), partition=str(index)
                )
                lengths.append((str(index), backlog.length))
                groups.extend(backlog.groups)
        except COMMAND_ERRORS as exc:
            raise BrokerUnavailableError(f"stream backlog not read: {exc}") from exc
        return StreamBacklog(sum(n for _, n in lengths), groups, tuple(lengths))

    @asynccontextmanager
    async def _consuming(
        self, group: str, consumer: str, settings: ConsumeSettings
    ) -> AsyncIterator[GroupConsumer]:
        commands = self._require_commands()
        reader = cluster_client(
            self._url,
            # A blocked XREAD answers within `block_seconds`; the margin covers the trip.
            timeout=settings.block_seconds + self._publish_timeout + 1.0,
            client_name=f"{self._client_name}-consume",
            refresh_interval=self._failover_poll,
        )
        backend = PartitionedGroupBackend(
            [
                RedisGroupBackend(
                    commands,
                    reader,
                    stream_key=self._partitions.key(index),
                    dead_key=self._partitions.dead_key(index),
                    dead_maxlen=DEAD_LETTER_MAXLEN,
                    group=group,
                    consumer=consumer,
                    id_prefix=message_prefix(index),
                )
                for index in self._partitions
            ]
        )
        group_consumer = GroupConsumer(
            backend,
            group=group,
            consumer=consumer,
            counters=self._durable,
            is_closed=lambda: self._closed,
            settings=settings,
            # A primary lost is back (its replica promoted) within seconds: retry at the
            # failover poll, not the single Redis's backoff of up to 5 s.
            retry_cap=self._failover_poll,
        )
        self._readers.add(reader)
        try:
            await group_consumer.start()
            yield group_consumer
        finally:
            group_consumer.close()
            self._readers.discard(reader)
            await backend.close()
            with suppress(*COMMAND_ERRORS):
                await reader.aclose()

    async def _probe(self) -> bool:
        commands = self._require_commands()
        try:
            async with asyncio.timeout(self._publish_timeout):
                answered = bool(await commands.ping())
        except (*COMMAND_ERRORS, TimeoutError):
            answered = False
        self._command_status = BrokerStatus.CONNECTED if answered else BrokerStatus.DISCONNECTED
        return answered

    def _require_commands(self) -> RedisCluster:
        if self._closed or self._commands is None:
            raise BrokerNotConnectedError(f"RedisClusterBroker is {self.status().value}")
        return self._commands
