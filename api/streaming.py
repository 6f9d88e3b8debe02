"""One SSE client's stream: history from the store, then live from the broker.

The order matters: subscribe (and wait for the broker's confirmation) before
reading history, or an event committed in between would be missed. Live
deliveries whose `sequence` was already sent are dropped; a jump in `sequence`,
or a resync notice from the broker (queue overflow, reconnect), is healed by
reading the missing events from the store. The store is the truth.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from pydantic import ValidationError

from broker import EventBroker, topic_for
from schemas import EventEnvelope, is_terminal
from store import StoredEvent

log = logging.getLogger(__name__)


class EventHistory(Protocol):
    """What a stream reads from the store (`store.EventStore` in production)."""

    async def history(
        self, task_id: str, *, after: int = 0, limit: int = 100
    ) -> list[StoredEvent]: ...

    async def last_sequence(self, task_id: str) -> int | None: ...


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    sequence: int
    event_type: str
    envelope_json: str

    @property
    def terminal(self) -> bool:
        return is_terminal(self.event_type)


@dataclass(slots=True)
class StreamCounters:
    """Process-wide counts an operator watches (exported as metrics)."""

    open_streams: int = 0
    heals: int = 0
    dropped_duplicates: int = 0
    invalid_messages: int = 0


COUNTERS = StreamCounters()


class TaskEventStream:
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
    ) -> None:
        self._task_id = task_id
        self._last = after
        self._history = history
        self._store = store
        self._broker = broker
        self._queue_size = queue_size
        self._page_size = page_size

    async def _catch_up(self) -> AsyncIterator[OutgoingEvent]:
        """Everything the store has after the last sent sequence, page by page."""
        while True:
            page = await self._store.history(self._task_id, after=self._last, limit=self._page_size)
            for stored in page:
                self._last = stored.sequence
                yield OutgoingEvent(stored.sequence, stored.event_type, stored.envelope_json)
            if len(page) < self._page_size:
                return

    async def events(self) -> AsyncIterator[OutgoingEvent]:
        COUNTERS.open_streams += 1
        try:
            async for event in self._events():
                yield event
        finally:
            COUNTERS.open_streams -= 1

    async def _events(self) -> AsyncIterator[OutgoingEvent]:
        fields = {"task_id": self._task_id}
        async with self._broker.subscribe(
            topic_for(self._task_id), queue_size=self._queue_size
        ) as subscription:
            if not self._history:
                self._last = max(self._last, await self._store.last_sequence(self._task_id) or 0)
            async for event in self._catch_up():
                yield event
                if event.terminal:
                    return
            async for delivery in subscription:
                if delivery.resync or delivery.payload is None:
                    COUNTERS.heals += 1
                    log.info("stream resync from store", extra={**fields, "sequence": self._last})
                    async for event in self._catch_up():
                        yield event
                        if event.terminal:
                            return
                    continue
                try:
                    envelope = EventEnvelope.model_validate_json(delivery.payload)
                except ValidationError:
                    COUNTERS.invalid_messages += 1
                    log.warning(
                        "invalid broker message dropped",
                        extra={**fields, "raw": delivery.payload[:2000]},
                    )
                    continue
                sequence = envelope.sequence or 0
                if sequence <= self._last:
                    COUNTERS.dropped_duplicates += 1
                    continue
                if sequence > self._last + 1:
                    COUNTERS.heals += 1
                    log.info(
                        "sequence gap healed from store",
                        extra={**fields, "sequence": sequence, "after": self._last},
                    )
                    async for event in self._catch_up():
                        yield event
                        if event.terminal:
                            return
                    continue
                self._last = sequence
                event = OutgoingEvent(sequence, envelope.type, delivery.payload)
                yield event
                if event.terminal:
                    return
