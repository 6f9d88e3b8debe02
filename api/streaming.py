"""One SSE client's stream: history from the store, then live from the broker.

The order matters: subscribe (and wait for the broker's confirmation) before
reading history, or an event committed in between would be missed. Live
deliveries whose `sequence` was already sent are dropped; a jump in `sequence`,
or a resync notice from the broker (queue overflow, reconnect), is healed by
reading the missing events from the store. The store is the truth.

While Redis is away the stream falls back to the store: a new stream that gets
no confirmation (at once when the broker is already down, after the broker's
subscribe timeout otherwise) polls the store every `poll_interval` and tries to
subscribe again every few polls; an open stream whose broker connection is
down reads the store every `poll_interval` while it waits for live events.
When the subscription is back it catches up from the store once more, so the
switch loses and repeats nothing (every event is keyed by its `sequence`).

A stream also ends, cleanly, after `idle_timeout` seconds without an event:
the client resumes with `Last-Event-ID`, possibly on another API process, and
nothing is held for a client that may be long gone.

`batches()` is ONE async generator with no generator nested in it (and no exit stack:
a deque each), so closing it releases the subscription in the same step. How it waits
is its `StreamWaiter`'s business (api/stream_wait.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TypeVar

from api.live_events import LIVE, LiveEvent
from api.store_retry import read_patiently
from api.stream_events import EventHistory, OutgoingEvent
from api.stream_gate import StreamCounters
from api.stream_subscribe import live_subscription
from api.stream_wait import PlainWaiter, StreamWaiter
from broker import BrokerNotConnectedError, BrokerStatus, Delivery, EventBroker, Subscription
from schemas import is_terminal

log = logging.getLogger(__name__)
T = TypeVar("T")


# While Redis is away: how many store polls pass between attempts to subscribe again.
RESUBSCRIBE_EVERY_POLLS = 3


class TaskEventStream:
    # One per open stream, thousands per process: no `__dict__`.
    __slots__ = (
        "_broker",
        "_catching_up",
        "_counters",
        "_held",
        "_history",
        "_idle_deadline",
        "_idle_timeout",
        "_last",
        "_page_size",
        "_poll_interval",
        "_queue_size",
        "_store",
        "_task_id",
        "_wait",
    )

    def __init__(
        self,
        task_id: str,
        *,
        after: int,
        history: bool,
        store: EventHistory,
        broker: EventBroker,
        queue_size: int,
        page_size: int,
        idle_timeout: float = 300.0,
        poll_interval: float = 1.0,
        counters: StreamCounters | None = None,
        waiter: StreamWaiter | None = None,
    ) -> None:
        self._task_id = task_id
        self._wait = waiter or PlainWaiter()
        self._counters = counters or StreamCounters()
        self._last = after
        self._history = history
        self._store = store
        self._broker = broker
        self._queue_size = queue_size
        self._page_size = page_size
        self._idle_timeout = idle_timeout
        self._poll_interval = poll_interval
        self._catching_up = True  # history first: everything after the client's cursor
        self._idle_deadline = 0.0
        self._held: contextlib.AbstractAsyncContextManager[Subscription] | None = None

    async def events(self) -> AsyncGenerator[OutgoingEvent, None]:
        """The events one by one (see `batches`)."""
        async with contextlib.aclosing(self.batches()) as batches:
            async for batch in batches:
                for event in batch:
                    yield event

    async def batches(self) -> AsyncGenerator[list[OutgoingEvent], None]:
        """The events to send, a store page or one live event at a time, until the task's
        terminal event (the stream ends after it), an idle timeout or the broker's close."""
        self._counters.open_streams += 1
        try:
            subscription = await self._subscribe()
            if not self._history:
                last = await self._store.last_sequence(self._task_id)
                self._last = max(self._last, last or 0)
            self._idle_deadline = _now() + self._idle_timeout
            polls = 0
            while True:
                if subscription is None:
                    batch = await self._poll_store()
                    polls += 1
                    if batch == [] and polls % RESUBSCRIBE_EVERY_POLLS == 0:
                        subscription = await self._subscribe()
                else:
                    batch = await self._next_batch(subscription)
                if batch is None:
                    return
                if not batch:
                    continue
                yield batch
                # Only the last of a batch can end the task: a reset may follow a terminal.
                if batch[-1].terminal and await self._ends_task(batch[-1]):
                    return
                batch = None  # not held while the next one is awaited (an idle stream's wait)
                self._idle_deadline = _now() + self._idle_timeout
        finally:
            self._counters.open_streams -= 1
            held, self._held = self._held, None
            if held is not None:  # released in this step: the broker's exit never waits
                await held.__aexit__(None, None, None)

    async def _subscribe(self) -> Subscription | None:
        """The live subscription (confirmed), or None while Redis is away: the stream
        then reads the store. Either way a catch-up from the store comes next."""
        self._catching_up = True
        held = await live_subscription(
            self._broker, self._task_id, self._queue_size, self._counters, self._last
        )
        if held is None:
            return None
        self._held, subscription = held
        return subscription

    async def _from_store(self, read: Callable[[], Awaitable[T]]) -> T:
        """`read()`, waiting out a store that does not answer (api/store_retry.py): the
        stream keeps its client, its heartbeats go on. Past the idle deadline the error
        ends the stream (`event: error`) as before."""

        def retrying(exc: Exception) -> None:
            self._counters.store_retries += 1
            log.warning(
                "store read failed; the stream reads again",
                extra={"task_id": self._task_id, "sequence": self._last, "error": str(exc)},
            )

        return await read_patiently(
            read, deadline=self._idle_deadline, pause=self._wait.pause, on_retry=retrying
        )

    async def _poll_store(self) -> list[OutgoingEvent] | None:
        """Without a subscription: what the store has after the cursor, else a pause
        (`[]`); None when the stream has idled out."""
        page = await self._read_page()
        if page:
            return page
        remaining = self._idle_deadline - _now()
        if remaining <= 0:
            self._counters.idle_timeouts += 1
            log.info("idle stream ended", extra={"task_id": self._task_id, "sequence": self._last})
            return None
        self._counters.store_polls += 1
        await self._wait.pause(min(self._poll_interval, remaining))
        return []

    async def _read_page(self) -> list[OutgoingEvent]:
        """The store's next page after the cursor; the cursor moves to its end."""
        page = await self._from_store(
            lambda: self._store.history(self._task_id, after=self._last, limit=self._page_size)
        )
        if page:
            self._last = page[-1].sequence
        return [OutgoingEvent(e.sequence, e.event_type, e.envelope_json) for e in page]

    async def _ends_task(self, event: OutgoingEvent) -> bool:
        """Whether this terminal event is the task's current ending. An operator's reset
        opens a new chapter after it (`task.reset.v1` …), which the stream goes on to."""
        latest = await self._from_store(lambda: self._store.last_sequence(self._task_id))
        return latest is None or latest <= event.sequence

    async def _next_batch(self, subscription: Subscription) -> list[OutgoingEvent] | None:
        """The next events to send (a store page, or one live event); None ends the stream."""
        while True:
            if self._catching_up:
                page = await self._read_page()
                self._catching_up = len(page) == self._page_size  # a full page: read on
                if page:
                    return page
                continue
            remaining = max(self._idle_deadline - _now(), 0.0)
            degraded = self._broker.status() is not BrokerStatus.CONNECTED
            try:
                delivery = await self._wait.next_delivery(
                    subscription,
                    min(remaining, self._poll_interval) if degraded else remaining,
                    self,  # `accept_live`
                )
            except BrokerNotConnectedError:
                return None  # the broker closed (shutdown): the client resumes elsewhere
            if delivery is None and _now() < self._idle_deadline:
                if not degraded and self._broker.status() is BrokerStatus.CONNECTED:
                    continue  # events went out while it waited (`accept_live`): wait on
                # Redis is away: nothing live can come, so read the store instead.
                self._counters.store_polls += 1
                self._catching_up = True
                continue
            if delivery is None:
                self._counters.idle_timeouts += 1
                log.info(
                    "idle stream ended", extra={"task_id": self._task_id, "sequence": self._last}
                )
                return None
            event = self._live(delivery)
            if event is not None:
                return [event]

    def accept_live(self, delivery: Delivery) -> LiveEvent | None:
        """A live delivery the waiter may send itself while the stream waits (the fan-out
        writes it: `api.sse_client.SseClient.take`): only the very next event, valid and
        for this task, and not a terminal one (the stream checks whether that ends it).
        Taken, it is sent: the cursor and the idle deadline move here. Anything else is
        None and reaches `_live` the usual way (skipped, healed, counted, logged there)."""
        payload = delivery.payload
        if payload is None:
            return None
        live = LIVE.decode(payload)
        if (
            live is None
            or live.sequence != self._last + 1
            or live.subject != self._task_id
            or is_terminal(live.event_type)
        ):
            return None
        self._last = live.sequence
        self._idle_deadline = _now() + self._idle_timeout
        return live

    def _live(self, delivery: Delivery) -> OutgoingEvent | None:
        """The delivery as the next event to send, or None (skipped, or a catch-up is due)."""
        if delivery.resync or delivery.payload is None:
            self._counters.heals += 1
            self._counters.resync_heals += 1
            log.info(
                "stream resync from store", extra={"task_id": self._task_id, "sequence": self._last}
            )
            self._catching_up = True
            return None
        # Strict (`schemas.decode_event`, once per message in this process): the payload
        # is forwarded as it came, so a look-alike that is not exactly a Taskplane event
        # must never pass for the next one. Refusing it costs nothing: the store heals.
        live = LIVE.decode(delivery.payload)
        if live is None or live.subject != self._task_id:
            self._counters.invalid_messages += 1
            log.warning(
                "invalid broker message skipped",
                extra={"task_id": self._task_id, "raw": delivery.payload[:2000]},
            )
            return None
        sequence = live.sequence
        if sequence <= self._last:
            self._counters.dropped_duplicates += 1
            return None
        if sequence > self._last + 1:
            self._counters.heals += 1
            self._counters.gap_heals += 1
            log.info(
                "sequence gap healed from store",
                extra={"task_id": self._task_id, "sequence": sequence, "after": self._last},
            )
            self._catching_up = True
            return None
        self._last = sequence
        return OutgoingEvent(sequence, live.event_type, delivery.payload, live)


def _now() -> float:
    return asyncio.get_running_loop().time()
