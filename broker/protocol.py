"""The contract between the event path and whatever carries events between processes.

Two ways to receive, for two kinds of reader:

- `subscribe(topic)`: live fan-out for SSE. The store is the truth; the broker
  is a doorbell. A subscriber may be told "you may have missed something"
  (`Delivery.resync`) instead of being given every message: the SSE layer then
  re-reads the store. That is what lets the broker keep every per-client queue
  bounded.
- `consume(group, consumer=...)`: durable, at-least-once delivery of every
  published event to a consumer group (worker handlers). Nothing is dropped:
  a message is redelivered until it is acknowledged, and set aside in a
  dead-letter stream when it is not a valid event or failed too often.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, TypedDict, Unpack, runtime_checkable

from schemas import EventEnvelope


class BrokerError(Exception):
    """Base of the broker's typed errors."""


class BrokerUnavailableError(BrokerError):
    """The broker could not be reached (publish or subscribe failed)."""


class BrokerNotConnectedError(BrokerError):
    """The broker was used before `connect()` or after `close()`."""


class DeadLetterReason(enum.StrEnum):
    """Why a durable message was set aside instead of handled."""

    MALFORMED = "malformed"  # not JSON, or an envelope attribute missing / mistyped
    UNKNOWN_TYPE = "unknown_type"
    INVALID_DATA = "invalid_data"
    OVERSIZED = "oversized"
    MAX_DELIVERIES = "max_deliveries"  # delivered that often and never acknowledged
    REJECTED = "rejected"  # the handler said it can never succeed


class BrokerStatus(enum.StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


def topic_for(task_id: str) -> str:
    """The live topic of one task: `task.{task_id}`."""
    return f"task.{task_id}"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One item a subscription yields.

    Either a message (`payload` is the event envelope's JSON text exactly as it
    was published) or, with `resync=True` and `payload=None`, a notice that
    messages may have been lost (the subscriber's queue overflowed, or the
    broker connection was re-established) and the consumer must catch up from
    the store.
    """

    payload: str | None
    resync: bool = False


@dataclass(frozen=True, slots=True)
class BrokerStats:
    """A snapshot for metrics: live fan-out now, and counts since the broker was made."""

    topics: int = 0  # topics with at least one subscriber
    subscribers: int = 0
    buffered: int = 0  # deliveries waiting in all subscriber queues now
    max_buffered: int = 0  # the deepest single subscriber queue now
    delivered: int = 0
    dropped: int = 0  # messages a full (or resyncing) subscriber queue could not take
    resyncs: int = 0  # resync notices queued: overflows and reconnects
    reconnects: int = 0  # live connections lost and re-established
    # Durable consumption, over every consumer of this broker.
    consumed: int = 0  # valid messages handed to consumers
    redelivered: int = 0  # ... of which were claimed again
    acked: int = 0
    invalid: int = 0  # refused by validation (and dead-lettered)
    dead_lettered: int = 0
    gone: int = 0  # pending entries trimmed before they were acknowledged (then healed)
    trim_gaps: int = 0  # trim gaps found (entries trimmed before the group read them)
    unhealed_gaps: int = 0  # ... skipped: the consumer had no `heal` callback


class ConsumeOptions(TypedDict, total=False):
    """The options of `consume(...)`, every broker's one signature for them.

    Each is optional; `broker.group_backend.ConsumeSettings` holds the defaults.
    """

    batch_size: int  # entries one read takes at most
    block_seconds: float  # how long a read waits for new entries
    claim_idle_seconds: float  # pending this long in another consumer: claimed
    max_deliveries: int  # delivered this often without an ack: dead-lettered
    from_start: bool  # a group created now starts at the stream's oldest entry
    heal: Healer | None  # reads what a trim gap took from the store (None: skip, counted)


@dataclass(frozen=True, slots=True)
class DurableMessage:
    """One validated event from the durable stream, delivered to one consumer of a group."""

    message_id: str  # the broker's id of this stream entry; `ack` takes the message
    topic: str
    envelope: EventEnvelope
    payload: str  # the envelope JSON exactly as published
    deliveries: int  # 1 on the first delivery, more when it was claimed again


@dataclass(frozen=True, slots=True)
class TrimGap:
    """Entries trimmed from the stream before the group read them: every entry with an
    id after `after_id` and before `before_id` (both exclusive) may be among them."""

    after_id: str
    before_id: str

    @classmethod
    def around(cls, entry_id: str) -> TrimGap:
        """The gap of one pending entry whose payload was trimmed away."""
        return cls(id_before(entry_id), id_after(entry_id))

    @property
    def after_ms(self) -> int:
        return id_key(self.after_id)[0]

    @property
    def before_ms(self) -> int:
        return id_key(self.before_id)[0]


MAX_SEQUENCE = 2**64 - 1


def id_key(entry_id: str) -> tuple[int, int]:
    """A stream id (`millis-sequence`) as a sortable pair; a partitioned broker's message
    id (`<partition>:millis-sequence`, broker/cluster_streams.py) gives its stream id's."""
    millis, _, sequence = entry_id.rpartition(":")[2].partition("-")
    return int(millis or 0), int(sequence or 0)


def id_before(entry_id: str) -> str:
    """The greatest id smaller than `entry_id`."""
    millis, sequence = id_key(entry_id)
    if sequence > 0:
        return f"{millis}-{sequence - 1}"
    return f"{millis - 1}-{MAX_SEQUENCE}" if millis > 0 else "0-0"


def id_after(entry_id: str) -> str:
    millis, sequence = id_key(entry_id)
    return f"{millis}-{sequence + 1}" if sequence < MAX_SEQUENCE else f"{millis + 1}-0"


# What a consumer calls to heal a gap; raises when it could not (the gap is kept).
Healer = Callable[[TrimGap], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message set aside for a person to look at; the raw payload is kept as it came."""

    message_id: str
    group: str
    consumer: str
    reason: DeadLetterReason
    error: str
    topic: str | None
    payload: str | None
    deliveries: int


class DurableConsumer(Protocol):
    """One consumer's view of a group: iterate for messages, then `ack` each one handled.

    A message not acknowledged stays pending and is delivered again — to any
    consumer of the group — once it has been idle for the claim interval;
    after `max_deliveries` deliveries it is dead-lettered instead. Invalid
    messages never reach the iterator: they are counted, logged and
    dead-lettered. Iteration ends when the broker closes.
    """

    @property
    def group(self) -> str: ...

    @property
    def consumer(self) -> str: ...

    def __aiter__(self) -> AsyncIterator[DurableMessage]: ...

    async def ack(self, message: DurableMessage) -> None:
        """Done with it: the group will not deliver it again."""
        ...

    def close(self) -> None:
        """End the iteration after the read in flight, without cancelling it."""
        ...

    async def dead_letter(self, message: DurableMessage, error: str) -> None:
        """Set it aside now (reason `rejected`: it can never succeed), and ack it."""
        ...


class Subscription(Protocol):
    """A live subscription to one topic; iterate it for `Delivery` items."""

    @property
    def topic(self) -> str: ...

    def __aiter__(self) -> AsyncIterator[Delivery]: ...

    async def get(self, timeout: float | None = None) -> Delivery | None:  # noqa: ASYNC109 - a queue read with a deadline, like asyncio.Queue + wait_for
        """The next delivery, or None when `timeout` seconds pass without one."""
        ...


@runtime_checkable
class EventBroker(Protocol):
    async def connect(self) -> None:
        """Open connections; idempotent."""
        ...

    async def close(self) -> None:
        """Release every connection and end every open subscription."""
        ...

    def status(self) -> BrokerStatus:
        """The live connection's state; before any subscription, the last command's outcome."""
        ...

    def stats(self) -> BrokerStats: ...

    async def ping(self) -> bool:
        """True when the broker answers now (used by readiness checks)."""
        ...

    async def publish(self, topic: str, payload: str) -> None:
        """Send `payload` to the live topic and append it to the durable stream.

        Raises `BrokerUnavailableError` when the broker cannot take it.
        """
        ...

    async def publish_many(self, topic: str, payloads: Sequence[str]) -> None:
        """`publish` for several payloads of one topic, in this order, at once (one round
        trip for a network broker). Raises `BrokerUnavailableError`: then any of them may
        have gone out (the outbox relay publishes them again; readers dedupe by sequence).
        """
        ...

    async def publish_batch(self, messages: Sequence[tuple[str, str]]) -> None:
        """`publish` for (topic, payload) pairs of any topics, in this order, at once (one
        round trip for a network broker: a group commit's events). Raises as
        `publish_many` does, with the same meaning."""
        ...

    def subscribe(
        self, topic: str, *, queue_size: int | None = None
    ) -> AbstractAsyncContextManager[Subscription]:
        """Subscribe to `topic`; entering returns only once the broker confirmed it.

        Leaving releases the subscription; the process's shared connection
        unsubscribes from the topic when its last subscriber leaves.
        """
        ...

    def consume(
        self, group: str, *, consumer: str, **options: Unpack[ConsumeOptions]
    ) -> AbstractAsyncContextManager[DurableConsumer]:
        """Join consumer group `group` (created on first use) as `consumer`.

        Every event published after the group was created (or every event still
        in the stream, with `from_start`) is delivered to at least one consumer
        of the group until acknowledged; see `DurableConsumer`. Entries the stream
        trimmed before the group read them are handed to `heal` as a `TrimGap`
        (see `broker.durable`).
        """
        ...
