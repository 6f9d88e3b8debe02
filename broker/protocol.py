"""The contract between the event path and whatever carries events between processes.

The store is the truth; the broker is a doorbell. A subscriber may therefore be
told "you may have missed something" (`Delivery.resync`) instead of being given
every message: the SSE layer then re-reads the store. That is what lets the
broker keep every per-client queue bounded.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class BrokerError(Exception):
    """Base of the broker's typed errors."""


class BrokerUnavailableError(BrokerError):
    """The broker could not be reached (publish or subscribe failed)."""


class BrokerNotConnectedError(BrokerError):
    """The broker was used before `connect()` or after `close()`."""


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

    def status(self) -> BrokerStatus: ...

    async def ping(self) -> bool:
        """True when the broker answers now (used by readiness checks)."""
        ...

    async def publish(self, topic: str, payload: str) -> None:
        """Send `payload` to the live topic and append it to the durable stream.

        Raises `BrokerUnavailableError` when the broker cannot take it.
        """
        ...

    def subscribe(
        self, topic: str, *, queue_size: int | None = None
    ) -> AbstractAsyncContextManager[Subscription]:
        """Subscribe to `topic`; entering returns only once the broker confirmed it.

        Leaving releases the subscription; the process's shared connection
        unsubscribes from the topic when its last subscriber leaves.
        """
        ...
