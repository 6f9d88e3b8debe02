"""The process's ONE Redis pub/sub connection, shared by every live subscription.

A redis-py `PubSub` holds a pool connection for as long as it lives, so one per
SSE client would cost a Redis connection per browser tab. Here one `PubSub` and
one reader task serve every subscriber; topics are reference-counted through
the `Fanout`. The reader starts with the first subscription (a process that
only publishes never holds the connection) and then stays, idle if need be,
until the broker closes.

The reader loop, one iteration per connection:

    open: PubSub.connect(), then SUBSCRIBE every topic that has subscribers
    read: get_message(timeout=health_check_interval) until the connection fails
          - "message"   → Fanout.deliver
          - "subscribe" → that topic is confirmed (wakes its waiting subscribers;
                          after a reconnect also pushes their resync notice)
          - nothing within the interval → PING; a second silent interval means
            the connection is dead even if TCP has not said so
    teardown, back off (capped, jittered: broker.backoff), open again

Why it waits without spinning and without the redis-py trap: `get_message`
raises while the `PubSub` has no connection, which is the case until its first
SUBSCRIBE. The reader calls the public `PubSub.connect()` before anything is
subscribed, so a read with no channels is an ordinary blocking socket read.

Why confirmations are counted (the bookkeeping is `broker.pubsub_topics`): redis-py's
`subscribe()` only sends the command, and Redis answers every SUBSCRIBE, even a
redundant one, so a topic is confirmed when its count of unanswered SUBSCRIBEs on the
current connection returns to zero.

Who sends: only tasks the broker owns. A subscriber never writes to the shared
connection: it registers its topic and waits for the confirmation, and the
broker's command task sends the SUBSCRIBEs and UNSUBSCRIBEs, in the order they
were asked for, batched. A subscriber is cancelled whenever its client vanishes
(a closed browser tab, an anyio cancel scope); were it sending, the cancellation
could interrupt a command half-written, or leave a SUBSCRIBE counted as
outstanding that Redis never got, and then no later subscriber of that topic
would ever be confirmed on this connection (issue 23). The broker's own tasks
are cancelled only by `stop()`, which discards the connection anyway.

Locking: only the reader reads. Every command on the `PubSub` (SUBSCRIBE,
UNSUBSCRIBE, PING) and every swap of the current `PubSub` happen under one lock,
so no command can land on a connection that is being torn down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from broker.backoff import ReconnectBackoff
from broker.cancelling import cancel_until_done
from broker.fanout import Fanout, FanoutSubscription
from broker.protocol import BrokerNotConnectedError, BrokerStatus, BrokerUnavailableError
from broker.pubsub_topics import TopicConfirmations
from broker.redis_clients import discard_pubsub

logger = logging.getLogger(__name__)


class SharedPubSub:
    """Subscriptions over one `PubSub`, kept alive by a reconnecting reader task."""

    def __init__(
        self,
        client: Redis,
        fanout: Fanout,
        *,
        subscribe_timeout: float,
        health_check_interval: float,
    ) -> None:
        self._client = client
        self._fanout = fanout
        self._subscribe_timeout = subscribe_timeout
        self._health_check_interval = health_check_interval
        self._status = BrokerStatus.DISCONNECTED
        # The PubSub commands may use (None while reconnecting), and the one the reader
        # owns until it is discarded (so stop() can close it whatever the reader was doing).
        self._pubsub: PubSub | None = None
        self._owned: PubSub | None = None
        self._lock = asyncio.Lock()
        self._topics = TopicConfirmations()
        self._commander: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stopped = False
        self._reconnects = 0

    @property
    def status(self) -> BrokerStatus:
        return self._status

    @property
    def reconnects(self) -> int:
        """Connections lost and re-established since start (for metrics)."""
        return self._reconnects

    @property
    def started(self) -> bool:
        """Whether the reader runs: it starts with the first subscription, not before."""
        return self._reader is not None

    def _ensure_reader(self) -> None:
        # Lazily: a process that only publishes (the worker) never holds a pub/sub connection.
        if self._reader is None:
            self._reader = asyncio.create_task(self._run(), name="taskplane-broker-pubsub")

    async def stop(self) -> None:
        """Stop the reader and release the connection; every subscription ends."""
        if self._stopped:
            return
        self._set_status(BrokerStatus.CLOSED)
        self._stopped = True
        self._topics.release_waiters()  # waiters see `_stopped` and raise, not time out
        self._fanout.close_all()
        await cancel_until_done((self._reader, self._commander))
        self._pubsub = None
        if self._owned is not None:
            await discard_pubsub(self._owned)
            self._owned = None

    @asynccontextmanager
    async def subscription(
        self, topic: str, queue_size: int | None
    ) -> AsyncIterator[FanoutSubscription]:
        if self._stopped:
            raise BrokerNotConnectedError("the broker was closed")
        self._ensure_reader()
        subscription, first = self._fanout.add(topic, queue_size)
        try:
            if first:
                self._topics.want(topic)
                self._wake_commander()
            await self._wait_confirmed(topic)
            yield subscription
        finally:
            # Synchronous on purpose: a consumer that leaves under cancellation (a
            # vanished SSE client, an anyio cancel scope) must not need to await Redis.
            self._release(subscription)

    async def _wait_confirmed(self, topic: str) -> None:
        event = self._topics.confirmation(topic)
        try:
            async with asyncio.timeout(self._subscribe_timeout):
                await event.wait()
        except TimeoutError:
            raise BrokerUnavailableError(
                f"Redis did not confirm the subscription to {topic!r} "
                f"within {self._subscribe_timeout} s (pub/sub is {self._status.value})"
            ) from None
        if self._stopped:
            raise BrokerNotConnectedError("the broker was closed")

    def _release(self, subscription: FanoutSubscription) -> None:
        topic = subscription.topic
        if not self._fanout.remove(subscription):
            return
        self._topics.drop(topic)
        if self._stopped:
            return
        self._topics.ask_unsubscribe(topic)
        self._wake_commander()

    def _wake_commander(self) -> None:
        if self._commander is None or self._commander.done():
            self._commander = asyncio.create_task(
                self._send_commands(), name="taskplane-broker-pubsub-commands"
            )

    async def _send_commands(self) -> None:
        """Send what subscribers asked for, batched, from this broker-owned task only.

        UNSUBSCRIBEs go first (see `TopicConfirmations.take_commands`).
        """
        while self._topics.commands_pending:
            async with self._lock:
                leave, join = self._topics.take_commands(self._fanout)
                pubsub = self._pubsub
                if pubsub is None:
                    continue  # the next connection subscribes every topic that has subscribers
                try:
                    if leave:
                        await pubsub.unsubscribe(*leave)
                    if join:
                        # Counted before the send: a reply can only follow the send, and a
                        # failed send ends this connection, whose counts the next one resets.
                        self._topics.count_sent(join)
                        await pubsub.subscribe(*join)
                except (RedisError, OSError) as exc:
                    # The reader fails on the same broken connection and re-subscribes everything.
                    logger.debug("pub/sub command failed (%s); left to the reconnect", exc)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = ReconnectBackoff()
        while True:
            self._set_status(BrokerStatus.CONNECTING)
            try:
                pubsub = await self._open()
            except (RedisError, OSError) as exc:
                self._set_status(BrokerStatus.DISCONNECTED)
                logger.warning(
                    "Redis pub/sub connect failed (%s); retry in %.1f s", exc, backoff.delay
                )
                await asyncio.sleep(backoff.after_failed_connect())
                continue
            connected_at = loop.time()
            self._set_status(BrokerStatus.CONNECTED)
            try:
                await self._read(pubsub)
            except (RedisError, OSError) as exc:
                logger.warning("Redis pub/sub connection lost (%s); reconnecting", exc)
            except Exception:
                # A bug in routing must not end live fan-out for good: a new
                # connection and a resync notice heal whatever it broke.
                logger.exception("Redis pub/sub reader failed; reconnecting")
            await self._teardown(pubsub)
            self._reconnects += 1
            self._set_status(BrokerStatus.DISCONNECTED)
            await asyncio.sleep(backoff.after_lost(loop.time() - connected_at))

    async def _open(self) -> PubSub:
        pubsub = self._owned = self._client.pubsub()
        try:
            # Hold a connection before anything is subscribed: see the module docstring.
            await pubsub.connect()  # type: ignore[no-untyped-call]
            async with self._lock:
                topics = self._topics.new_connection()
                if topics:
                    await pubsub.subscribe(*topics)
                    self._topics.count_sent(topics)
                self._pubsub = pubsub
        except BaseException:
            await discard_pubsub(pubsub)
            self._owned = None
            raise
        return pubsub

    async def _teardown(self, pubsub: PubSub) -> None:
        async with self._lock:  # lets a SUBSCRIBE in flight on the dead connection finish
            self._pubsub = None
        # What was published during the break is gone: every topic waits for its new
        # confirmation, and then its subscribers are told to re-read the store.
        self._topics.connection_lost()
        # Tell every subscriber now, not only once re-subscribed: a stream can read the
        # store while Redis is away instead of waiting for a live event that cannot come.
        self._fanout.resync_all()
        await discard_pubsub(pubsub)
        self._owned = None

    async def _read(self, pubsub: PubSub) -> None:
        awaiting_pong = False
        while True:
            message = await pubsub.get_message(timeout=self._health_check_interval)
            if message is not None:
                awaiting_pong = False  # any traffic proves the connection alive
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
        if kind == "message":
            channel: bytes = message["channel"]
            topic = channel.decode()
            if not self._topics.is_confirmed(topic):
                # Sent before this topic's (re-)subscription was confirmed: older than
                # what its subscribers will read from the store, or for nobody at all.
                return
            try:
                payload = message["data"].decode()
            except UnicodeDecodeError:
                logger.warning("dropped a message on %r that is not UTF-8 text", channel)
                return
            self._fanout.deliver(topic, payload)
        elif kind == "subscribe":
            topic = message["channel"].decode()
            if self._topics.on_confirmed(topic):
                self._fanout.resync_topic(topic)

    def _set_status(self, status: BrokerStatus) -> None:
        if self._stopped or status is self._status:
            return
        logger.info("Redis pub/sub: %s -> %s", self._status.value, status.value)
        self._status = status
