"""`RedisBroker`: Redis pub/sub for live fan-out plus a Redis stream for durable consumers.

`publish` is one round trip, one command (a script, broker.redis_publish): PUBLISH to
the live topic, and XADD to one capped stream that durable consumers read with consumer
groups (`consume`, see `broker.redis_streams`). Live subscriptions all share one
pub/sub connection (`SharedPubSub`), opened with the first subscription.

Its three kinds of connection, and why each is set up as it is: broker.redis_clients.

Every redis-py error is turned into `BrokerUnavailableError` here; callers never
see a redis exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Unpack

from redis.asyncio import Redis
from redis.exceptions import RedisError

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
)
from broker.redis_clients import command_client, consume_client, pubsub_client
from broker.redis_publish import PublishScript
from broker.redis_pubsub import SharedPubSub
from broker.redis_stream_reports import StreamBacklog, read_backlog, read_dead_letters
from broker.redis_streams import RedisGroupBackend
from broker.stats import collect_stats

DEAD_LETTER_MAXLEN = 10_000


class RedisBroker:
    def __init__(
        self,
        url: str,
        *,
        stream_key: str = "taskplane:events",
        stream_maxlen: int = 100_000,
        default_queue_size: int = 256,
        publish_timeout: float = 1.0,
        subscribe_timeout: float = 5.0,
        health_check_interval: float = 15.0,
        client_name: str = "taskplane",
    ) -> None:
        self._url = url
        self._stream_key = stream_key
        self._stream_maxlen = stream_maxlen
        self._publish_timeout = publish_timeout
        self._subscribe_timeout = subscribe_timeout
        self._health_check_interval = health_check_interval
        self._client_name = client_name
        self._fanout = Fanout(default_queue_size)
        self._durable = DurableCounters()
        self._commands: Redis | None = None
        self._publish_script: PublishScript | None = None
        self._pubsub_client: Redis | None = None
        self._shared: SharedPubSub | None = None
        self._readers: set[Redis] = set()
        # What the last command (connect's probe, ping, publish) found, until a reader runs.
        self._command_status = BrokerStatus.DISCONNECTED
        self._closed = False

    @property
    def fanout(self) -> Fanout:
        """The in-process fan-out; its counters are the broker's drop/resync metrics."""
        return self._fanout

    @property
    def reconnects(self) -> int:
        return 0 if self._shared is None else self._shared.reconnects

    @property
    def pubsub_client_name(self) -> str:
        """The CLIENT SETNAME of the pub/sub connection, to find it in CLIENT LIST."""
        return f"{self._client_name}-pubsub"

    @property
    def stream_key(self) -> str:
        """The durable stream every publish appends to (consumer groups read it)."""
        return self._stream_key

    @property
    def dead_letter_key(self) -> str:
        return f"{self._stream_key}:dead"

    async def connect(self) -> None:
        """Create the clients and probe Redis once; never fails because Redis is down.

        A process must be able to start while Redis is down: `status()` and
        `ping()` report it, and every later command tries again.
        """
        if self._closed:
            raise BrokerNotConnectedError("the broker was closed")
        if self._shared is None:
            self._commands = command_client(self._url, self._publish_timeout, self._client_name)
            self._publish_script = PublishScript(
                self._commands, stream_key=self._stream_key, stream_maxlen=self._stream_maxlen
            )
            self._pubsub_client = pubsub_client(
                self._url, self._subscribe_timeout, self.pubsub_client_name
            )
            self._shared = SharedPubSub(
                self._pubsub_client,
                self._fanout,
                subscribe_timeout=self._subscribe_timeout,
                health_check_interval=self._health_check_interval,
            )
        await self._probe()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._shared is not None:
            await self._shared.stop()
        self._fanout.close_all()
        for client in (self._commands, self._pubsub_client, *self._readers):
            if client is not None:
                with suppress(RedisError, OSError):
                    await client.aclose()
        self._readers.clear()

    def status(self) -> BrokerStatus:
        if self._closed:
            return BrokerStatus.CLOSED
        if self._shared is None:
            return BrokerStatus.DISCONNECTED
        if self._shared.started:
            return self._shared.status
        return self._command_status

    def stats(self) -> BrokerStats:
        return collect_stats(self._fanout, self._durable, reconnects=self.reconnects)

    async def ping(self) -> bool:
        """Redis answers now, and the live connection (once there is one) is up."""
        if self._closed or self._commands is None:
            return False
        if not await self._probe():
            return False
        return (
            self._shared is None
            or not self._shared.started
            or self._shared.status is (BrokerStatus.CONNECTED)
        )

    async def publish(self, topic: str, payload: str) -> None:
        await self.publish_many(topic, (payload,))

    async def publish_many(self, topic: str, payloads: Sequence[str]) -> None:
        await self.publish_batch([(topic, payload) for payload in payloads])

    async def publish_batch(self, messages: Sequence[tuple[str, str]]) -> None:
        self._require_commands()
        assert self._publish_script is not None  # made with the command client
        if not messages:
            return
        topic = messages[0][0]  # named in errors: the first
        try:
            async with asyncio.timeout(self._publish_timeout):
                await self._publish_script(messages)
        except TimeoutError as exc:
            self._command_status = BrokerStatus.DISCONNECTED
            raise BrokerUnavailableError(
                f"publish to {topic!r} timed out after {self._publish_timeout} s"
            ) from exc
        except (RedisError, OSError) as exc:
            self._command_status = BrokerStatus.DISCONNECTED
            raise BrokerUnavailableError(f"publish to {topic!r} failed: {exc}") from exc
        self._command_status = BrokerStatus.CONNECTED

    def subscribe(
        self, topic: str, *, queue_size: int | None = None
    ) -> AbstractAsyncContextManager[Subscription]:
        if self._closed or self._shared is None:
            raise BrokerNotConnectedError(f"RedisBroker is {self.status().value}")
        return self._shared.subscription(topic, queue_size)

    def consume(
        self, group: str, *, consumer: str, **options: Unpack[ConsumeOptions]
    ) -> AbstractAsyncContextManager[DurableConsumer]:
        self._require_commands()
        return self._consuming(group, consumer, ConsumeSettings(**options))

    async def dead_letters(self, count: int = 100) -> list[DeadLetter]:
        """The newest `count` dead letters, oldest first."""
        return await read_dead_letters(self._require_commands(), self.dead_letter_key, count)

    async def stream_backlog(self) -> StreamBacklog:
        """The durable stream's length and how far each consumer group is behind it."""
        try:
            return await read_backlog(self._require_commands(), self._stream_key)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailableError(f"stream backlog not read: {exc}") from exc

    @asynccontextmanager
    async def _consuming(
        self, group: str, consumer: str, settings: ConsumeSettings
    ) -> AsyncIterator[GroupConsumer]:
        reader = consume_client(
            self._url, settings.block_seconds, self._publish_timeout, self._client_name
        )
        backend = RedisGroupBackend(
            self._require_commands(),
            reader,
            stream_key=self._stream_key,
            dead_key=self.dead_letter_key,
            dead_maxlen=DEAD_LETTER_MAXLEN,
            group=group,
            consumer=consumer,
        )
        group_consumer = GroupConsumer(
            backend,
            group=group,
            consumer=consumer,
            counters=self._durable,
            is_closed=lambda: self._closed,
            settings=settings,
        )
        self._readers.add(reader)
        try:
            await group_consumer.start()
            yield group_consumer
        finally:
            group_consumer.close()
            self._readers.discard(reader)
            with suppress(RedisError, OSError):
                await reader.aclose()

    async def _probe(self) -> bool:
        commands = self._require_commands()
        try:
            async with asyncio.timeout(self._publish_timeout):
                answered = bool(await commands.ping())
        except (RedisError, OSError, TimeoutError):
            answered = False
        self._command_status = BrokerStatus.CONNECTED if answered else BrokerStatus.DISCONNECTED
        return answered

    def _require_commands(self) -> Redis:
        if self._closed or self._commands is None:
            raise BrokerNotConnectedError(f"RedisBroker is {self.status().value}")
        return self._commands
