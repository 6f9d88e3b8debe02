"""In-process fan-out of one topic's messages to many subscribers, each behind a bounded queue.

Both brokers deliver through this registry, so their overflow and resync
semantics are the same code. The rule that keeps memory bounded: a queue never
blocks the publisher and never grows past its size. A message that does not
fit is dropped and the subscriber is told, once, to resync from the store — the
store is the truth, so a dropped doorbell ring costs a re-read, never an event.

Each queue has one slot more than its message capacity, reserved for the
resync notice, so the notice always fits and always comes after the messages
that were queued before the overflow. While a notice is waiting, further
messages are dropped too: the re-read it triggers covers them, and accepting
them would show the consumer a gap before the notice that explains it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from broker.protocol import BrokerNotConnectedError, Delivery

RESYNC = Delivery(payload=None, resync=True)


class Taker(Protocol):
    def take(self, delivery: Delivery) -> bool:
        """Handle `delivery` now (True), or leave it to the queue (False). Never raises."""
        ...


@dataclass(slots=True)
class FanoutCounters:
    """Process-wide counts, shared by every subscriber of one fan-out (for metrics)."""

    delivered: int = 0  # messages handed to a subscriber (queued, or taken at once)
    dropped: int = 0  # messages a subscriber's full (or resyncing) queue could not take
    resyncs: int = 0  # resync notices queued (overflows and reconnects)


class FanoutSubscription:
    """One subscriber's end: a bounded queue the fan-out fills and the consumer drains.

    Implements `broker.protocol.Subscription`. `offer`, `push_resync` and `close`
    belong to the fan-out; consumers call `get` (or iterate), or — an event loop
    of their own, such as an SSE response parked in `receive()` — set `waker`
    (called, synchronously, whenever something arrives or the subscription
    closes) and drain with `get_nowait`. Such a consumer may also set `taker`:
    its `take` is offered each message that finds the queue empty, before it
    is queued; when it returns True the consumer has handled the message
    itself (an SSE response wrote it while it waits): nothing is queued, nobody
    woken.

    A plain list and at most one waiting future: an idle subscription (the
    common case, thousands per API process) holds no `asyncio.Queue`, no timer
    and no task.
    """

    __slots__ = (
        "_capacity",
        "_closed",
        "_counters",
        "_getter",
        "_items",
        "_resync_queued",
        "_topic",
        "taker",
        "waker",
    )

    def __init__(self, topic: str, capacity: int, counters: FanoutCounters) -> None:
        if capacity < 1:
            raise ValueError(f"queue size must be at least 1, got {capacity}")
        self._topic = topic
        self._capacity = capacity
        self._counters = counters
        # A list, not a deque (~700 bytes less per idle subscriber): queues are short.
        self._items: list[Delivery] = []
        self._getter: asyncio.Future[None] | None = None
        self._resync_queued = False
        self._closed = False
        self.waker: Callable[[], None] | None = None
        self.taker: Taker | None = None  # an object, not a bound method: no allocation

    @property
    def topic(self) -> str:
        return self._topic

    @property
    def buffered(self) -> int:
        """Deliveries waiting in this subscriber's queue (at most capacity + 1)."""
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def offer(self, payload: str) -> None:
        """Queue `payload` without ever blocking; on overflow drop it and queue a resync."""
        self.offer_delivery(Delivery(payload=payload))

    def offer_delivery(self, delivery: Delivery) -> None:
        """`offer` for a delivery shared by every subscriber of the topic (one per message)."""
        if self._closed:
            return
        if self._resync_queued:
            self._counters.dropped += 1
        elif len(self._items) >= self._capacity:
            self._counters.dropped += 1
            self.push_resync()
        else:
            self._counters.delivered += 1
            if not self._items and self.taker is not None and self.taker.take(delivery):
                return  # handled by the consumer at once: in order, nothing was queued
            self._items.append(delivery)
            self._notify()

    def push_resync(self) -> None:
        """Queue one resync notice unless one is already waiting (notices coalesce)."""
        if self._closed or self._resync_queued:
            return
        # Cannot overflow: messages use at most `capacity` slots, the last one is this notice's.
        self._items.append(RESYNC)
        self._resync_queued = True
        self._counters.resyncs += 1
        self._notify()

    def close(self) -> None:
        """End the subscription: wake a blocked consumer; later `get()` calls raise."""
        if self._closed:
            return
        self._closed = True
        self._items.clear()
        self._notify()

    def _notify(self) -> None:
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)
        if self.waker is not None:
            self.waker()

    def get_nowait(self) -> Delivery | None:
        """The next delivery if one is waiting, else None; raises once closed."""
        if self._closed:
            raise BrokerNotConnectedError(f"subscription to {self._topic!r} is closed")
        if not self._items:
            return None
        item = self._items.pop(0)
        if item is RESYNC:
            self._resync_queued = False
        return item

    async def get(self, timeout: float | None = None) -> Delivery | None:  # noqa: ASYNC109 -- the Subscription protocol's signature
        """The next delivery, or None after `timeout` seconds without one.

        Raises `BrokerNotConnectedError` once the subscription was closed (the
        broker closed, or the subscription's context was left).
        """
        item = self.get_nowait()
        if item is not None:
            return item
        getter = self._getter = asyncio.get_running_loop().create_future()
        try:
            if timeout is None:
                await getter
            else:
                try:
                    async with asyncio.timeout(timeout):
                        await getter
                except TimeoutError:
                    return None
        finally:
            self._getter = None
        return self.get_nowait()

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        """Yield deliveries until the subscription is closed, then stop quietly."""
        while True:
            try:
                delivery = await self.get()
            except BrokerNotConnectedError:
                return
            if delivery is not None:
                yield delivery


class Fanout:
    """Registry of topic → subscribers, with reference counting left to the caller.

    `add` reports whether it created the topic's first subscriber and `remove`
    whether it removed the last, so the broker knows when to subscribe or
    unsubscribe the topic on its one shared connection.
    """

    def __init__(self, default_queue_size: int = 256) -> None:
        if default_queue_size < 1:
            raise ValueError(f"queue size must be at least 1, got {default_queue_size}")
        self._default_queue_size = default_queue_size
        self._topics: dict[str, set[FanoutSubscription]] = {}
        self._counters = FanoutCounters()

    def add(self, topic: str, queue_size: int | None = None) -> tuple[FanoutSubscription, bool]:
        """Register a subscriber; the bool is True when it is the topic's first."""
        capacity = self._default_queue_size if queue_size is None else queue_size
        subscription = FanoutSubscription(topic, capacity, self._counters)
        subscribers = self._topics.setdefault(topic, set())
        subscribers.add(subscription)
        return subscription, len(subscribers) == 1

    def remove(self, subscription: FanoutSubscription) -> bool:
        """Close and unregister a subscriber; True when it was the topic's last."""
        subscription.close()
        subscribers = self._topics.get(subscription.topic)
        if subscribers is None or subscription not in subscribers:
            return False
        subscribers.discard(subscription)
        if subscribers:
            return False
        del self._topics[subscription.topic]
        return True

    def deliver(self, topic: str, payload: str) -> None:
        """Offer `payload` to every subscriber of `topic`: ONE `Delivery` (and one payload
        string) shared by all of them, so each consumer can recognise the same message."""
        subscribers = self._topics.get(topic)
        if subscribers:
            delivery = Delivery(payload=payload)
            for subscription in subscribers:
                subscription.offer_delivery(delivery)

    def resync_topic(self, topic: str) -> None:
        for subscription in self._topics.get(topic, ()):
            subscription.push_resync()

    def resync_all(self) -> None:
        """Tell every subscriber it may have missed messages (after a reconnect)."""
        for subscribers in self._topics.values():
            for subscription in subscribers:
                subscription.push_resync()

    def close_all(self) -> None:
        """End every subscription (the broker is closing); registrations stay until left."""
        for subscribers in self._topics.values():
            for subscription in subscribers:
                subscription.close()

    def topics(self) -> list[str]:
        return list(self._topics)

    def __contains__(self, topic: object) -> bool:
        return topic in self._topics

    @property
    def topic_count(self) -> int:
        return len(self._topics)

    @property
    def subscriber_count(self) -> int:
        return sum(len(subscribers) for subscribers in self._topics.values())

    @property
    def buffered(self) -> int:
        """Deliveries held in all queues right now: the memory the fan-out is using."""
        return sum(s.buffered for subscribers in self._topics.values() for s in subscribers)

    @property
    def max_buffered(self) -> int:
        """The deepest single queue right now: how far the slowest subscriber lags."""
        return max(
            (s.buffered for subscribers in self._topics.values() for s in subscribers), default=0
        )

    @property
    def delivered(self) -> int:
        return self._counters.delivered

    @property
    def dropped(self) -> int:
        return self._counters.dropped

    @property
    def resyncs(self) -> int:
        return self._counters.resyncs
