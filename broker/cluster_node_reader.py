"""One primary's sharded pub/sub connection: SSUBSCRIBE its channels, route their messages.

Redis Cluster's sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis ≥ 7) keeps a channel's
messages inside the shard that owns the channel's slot, so a subscriber needs one
connection per primary. `ShardedPubSub` (broker/cluster_pubsub.py) keeps one
`NodeReader` per primary that serves a subscribed topic; each has one plain pub/sub
connection (never redis-py's round-robin cluster reader, which lost messages when
measured) and one reader task, and delivers into the broker's one `Fanout`.

A reader lives for ONE connection. Whatever ends it — the connection lost, no PONG
within two health-check intervals, a MOVED reply to an SSUBSCRIBE (the slot map was
stale), or an SUNSUBSCRIBE the server sent unasked (Redis 7 sends one for every shard
channel of a slot the node no longer serves: a failover, a migration) — it tells its
topics' subscribers to resync, marks itself failed and calls `on_failure`; the
watchdog re-reads the slot map and hands the topics to a new reader on their current
primary, whose confirmations bring a second resync (the store heals the gap).

Commands follow `SharedPubSub`'s rules (broker/redis_pubsub.py): only broker-owned
tasks write to the connection, under one lock; a topic is confirmed when its count of
unanswered SSUBSCRIBEs returns to zero (`broker.pubsub_topics`). Each SSUBSCRIBE and
SUNSUBSCRIBE names one channel: a node holds many slots, and a command naming channels
of two slots is refused (CROSSSLOT).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from broker.cancelling import cancel_until_done
from broker.cluster_topology import Address
from broker.fanout import Fanout
from broker.pubsub_topics import TopicConfirmations
from broker.redis_clients import discard_pubsub

logger = logging.getLogger(__name__)


class ShardMovedError(RedisError):
    """The node dropped a shard channel unasked: its slot is served elsewhere now."""


class NodeReader:
    def __init__(
        self,
        address: Address,
        fanout: Fanout,
        *,
        timeout: float,
        health_check_interval: float,
        client_name: str,
        on_failure: Callable[[NodeReader], None],
        credentials: tuple[str | None, str | None] = (None, None),
    ) -> None:
        self.address = address
        self.topics = TopicConfirmations()
        self._fanout = fanout
        self._health_check_interval = health_check_interval
        self._on_failure = on_failure
        self._client = Redis(
            host=address[0],
            port=address[1],
            username=credentials[0],
            password=credentials[1],
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # No retry and no health check of redis-py's own: see broker/redis_clients.py.
            retry=Retry(NoBackoff(), 0, supported_errors=()),
            health_check_interval=0,
            client_name=client_name,
        )
        self._pubsub: PubSub | None = None
        self._owned: PubSub | None = None
        self._lock = asyncio.Lock()
        self._leaving: dict[str, int] = {}  # SUNSUBSCRIBEs sent and not yet answered
        self._reader: asyncio.Task[None] | None = None
        self._commander: asyncio.Task[None] | None = None
        self.connected = False
        self.failed = False
        self._stopped = False

    def __repr__(self) -> str:
        return f"NodeReader({self.address[0]}:{self.address[1]})"

    def start(self) -> None:
        self._reader = asyncio.create_task(self._run(), name=f"taskplane-cluster-{self!r}")

    def add(self, topic: str, *, resync: bool) -> None:
        """Serve `topic` here; with `resync`, its subscribers re-read once it is confirmed."""
        self.topics.want(topic, resync=resync)
        self._wake_commander()

    def remove(self, topic: str) -> None:
        """Stop serving `topic` here (its last subscriber left, or it moved)."""
        if topic not in self.topics:
            return
        self.topics.drop(topic)
        self.topics.ask_unsubscribe(topic)
        self._wake_commander()

    async def stop(self) -> None:
        """Close the connection; the topics still held are the caller's to move."""
        self._stopped = True
        self.topics.release_waiters()
        await cancel_until_done((self._reader, self._commander))
        self._pubsub = None
        if self._owned is not None:
            await discard_pubsub(self._owned)
            self._owned = None
        await self._client.aclose()

    def _wake_commander(self) -> None:
        if self._stopped or self.failed:
            return
        if self._commander is None or self._commander.done():
            self._commander = asyncio.create_task(
                self._send_commands(), name=f"taskplane-cluster-commands-{self!r}"
            )

    async def _send_commands(self) -> None:
        while self.topics.commands_pending:
            async with self._lock:
                leave, join = self.topics.take_commands(self.topics)
                pubsub = self._pubsub
                if pubsub is None:
                    continue  # the connection, once open, subscribes every wanted topic
                try:
                    for topic in leave:
                        self._leaving[topic] = self._leaving.get(topic, 0) + 1
                        await pubsub.sunsubscribe(topic)
                    for topic in join:
                        self.topics.count_sent([topic])
                        await pubsub.ssubscribe(topic)
                except (RedisError, OSError) as exc:
                    logger.debug("sharded pub/sub command failed (%s); the reader fails too", exc)

    async def _run(self) -> None:
        try:
            pubsub = await self._open()
            self.connected = True
            await self._read(pubsub)
        except (RedisError, OSError) as exc:
            # A connection that never opened is a primary the map still names while its
            # failover runs: the watchdog retries every poll, so only a lost one warns.
            logger.log(
                logging.WARNING if self.connected else logging.DEBUG,
                "Redis Cluster pub/sub connection to %s:%d ended (%s: %s)",
                *self.address,
                type(exc).__name__,
                exc,
            )
        except Exception:
            logger.exception("Redis Cluster pub/sub reader failed")
        self.connected = False
        self.failed = True
        self._pubsub = None
        # What was published during the break is gone: re-read the store now (the
        # topics' next confirmation, on whichever node serves them then, brings another).
        for topic in self.topics.wanted():
            self._fanout.resync_topic(topic)
        if self._owned is not None:
            await discard_pubsub(self._owned)
            self._owned = None
        if not self._stopped:
            self._on_failure(self)

    async def _open(self) -> PubSub:
        pubsub = self._owned = self._client.pubsub()
        await pubsub.connect()  # type: ignore[no-untyped-call]
        async with self._lock:
            topics = self.topics.new_connection()
            for topic in topics:
                self.topics.count_sent([topic])
                await pubsub.ssubscribe(topic)
            self._pubsub = pubsub
        return pubsub

    async def _read(self, pubsub: PubSub) -> None:
        awaiting_pong = False
        while True:
            message = await pubsub.get_message(timeout=self._health_check_interval)
            if message is not None:
                awaiting_pong = False
                self._route(message)
            elif awaiting_pong:
                raise RedisConnectionError(
                    f"no reply to PING within {self._health_check_interval} s"
                )
            else:
                async with self._lock:
                    await pubsub.ping()
                awaiting_pong = True

    def _route(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "smessage":
            topic = message["channel"].decode()
            if not self.topics.is_confirmed(topic):
                return  # sent before its (re-)subscription here: older than the store read
            try:
                payload = message["data"].decode()
            except UnicodeDecodeError:
                logger.warning("dropped a message on %r that is not UTF-8 text", topic)
                return
            self._fanout.deliver(topic, payload)
        elif kind == "ssubscribe":
            topic = message["channel"].decode()
            if self.topics.on_confirmed(topic):
                self._fanout.resync_topic(topic)
        elif kind == "sunsubscribe":
            topic = message["channel"].decode()
            asked = self._leaving.get(topic, 0)
            if asked > 1:
                self._leaving[topic] = asked - 1
            elif asked == 1:
                del self._leaving[topic]
            else:
                raise ShardMovedError(f"{topic!r} was unsubscribed by the server")
