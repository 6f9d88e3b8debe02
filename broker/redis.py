"""`RedisBroker`: Redis pub/sub for live fan-out plus a Redis stream for durable consumers.

`publish` is one round trip (a non-transactional pipeline): PUBLISH to the live
topic, and XADD to one capped stream that durable consumers read with consumer
groups. Live subscriptions all share one pub/sub connection (`SharedPubSub`).

Two connection pools, on purpose: the publish pool may retry once (a pooled
connection that died while idle), while the pub/sub pool must never retry or
reconnect behind the reader's back — redis-py re-subscribes a reconnected
`PubSub` silently, which would hide the messages lost in the break.

Every redis-py error is turned into `BrokerUnavailableError` here; callers never
see a redis exception.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager, suppress

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from broker.fanout import Fanout
from broker.protocol import (
    BrokerNotConnectedError,
    BrokerStatus,
    BrokerUnavailableError,
    Subscription,
)
from broker.redis_pubsub import SharedPubSub


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
        self._commands: Redis | None = None
        self._pubsub_client: Redis | None = None
        self._shared: SharedPubSub | None = None
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

    async def connect(self) -> None:
        """Open the pools and start the pub/sub reader.

        Returns after the reader's first connection attempt, successful or not:
        a process must be able to start while Redis is down (readiness reports
        it, and the reader keeps retrying).
        """
        if self._closed:
            raise BrokerNotConnectedError("the broker was closed")
        if self._shared is None:
            self._commands = Redis.from_url(
                self._url,
                socket_timeout=self._publish_timeout,
                socket_connect_timeout=self._publish_timeout,
                retry=Retry(NoBackoff(), 1),
                client_name=f"{self._client_name}-publish",
            )
            self._pubsub_client = Redis.from_url(
                self._url,
                socket_timeout=self._subscribe_timeout,
                socket_connect_timeout=self._subscribe_timeout,
                # No retry, not even the failure callback: see the module docstring.
                retry=Retry(NoBackoff(), 0, supported_errors=()),
                # redis-py's own health check reads the socket inside subscribe(),
                # racing the reader; the reader's PING probe replaces it.
                health_check_interval=0,
                client_name=self.pubsub_client_name,
            )
            self._shared = SharedPubSub(
                self._pubsub_client,
                self._fanout,
                subscribe_timeout=self._subscribe_timeout,
                health_check_interval=self._health_check_interval,
            )
        await self._shared.start()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._shared is not None:
            await self._shared.stop()
        self._fanout.close_all()
        for client in (self._commands, self._pubsub_client):
            if client is not None:
                with suppress(RedisError, OSError):
                    await client.aclose()

    def status(self) -> BrokerStatus:
        if self._closed:
            return BrokerStatus.CLOSED
        if self._shared is None:
            return BrokerStatus.DISCONNECTED
        return self._shared.status

    async def ping(self) -> bool:
        if self._closed or self._commands is None:
            return False
        try:
            async with asyncio.timeout(self._publish_timeout):
                return bool(await self._commands.ping())
        except (RedisError, OSError, TimeoutError):
            return False

    async def publish(self, topic: str, payload: str) -> None:
        commands = self._require_commands()
        try:
            async with asyncio.timeout(self._publish_timeout):
                async with commands.pipeline(transaction=False) as pipe:
                    pipe.publish(topic, payload)
                    pipe.xadd(
                        self._stream_key,
                        {"topic": topic, "payload": payload},
                        maxlen=self._stream_maxlen,
                        approximate=True,
                    )
                    await pipe.execute()
        except TimeoutError as exc:
            raise BrokerUnavailableError(
                f"publish to {topic!r} timed out after {self._publish_timeout} s"
            ) from exc
        except (RedisError, OSError) as exc:
            raise BrokerUnavailableError(f"publish to {topic!r} failed: {exc}") from exc

    def subscribe(
        self, topic: str, *, queue_size: int | None = None
    ) -> AbstractAsyncContextManager[Subscription]:
        if self._closed or self._shared is None:
            raise BrokerNotConnectedError(f"RedisBroker is {self.status().value}")
        return self._shared.subscription(topic, queue_size)

    def _require_commands(self) -> Redis:
        if self._closed or self._commands is None:
            raise BrokerNotConnectedError(f"RedisBroker is {self.status().value}")
        return self._commands
