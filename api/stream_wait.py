"""How a `TaskEventStream` waits: for its next live delivery, or out a pause.

The stream itself never decides how to wait. Alone (tests, the CLI-free unit
rules) it waits the plain asyncio way, `PlainWaiter`. Behind an SSE response it
waits through the response (`api.sse_response.SseClient`), which meanwhile
sends the heartbeats, notices a vanished client and is woken by the fan-out,
all in the one task that serves the request, with no timer of its own while
idle (the process's `StreamTicker` keeps the time for every stream).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from api.live_events import LiveEvent
from broker import Delivery, Subscription


class Accepts(Protocol):
    """A stream that a waiter may hand live deliveries while it waits."""

    def accept_live(self, delivery: Delivery) -> LiveEvent | None:
        """The event when it is the stream's next (its cursor has moved past it: the waiter
        MUST send it), None to leave the delivery to `next_delivery`'s caller."""
        ...


class StreamWaiter(Protocol):
    async def next_delivery(
        self,
        subscription: Subscription,
        timeout: float,  # noqa: ASYNC109 -- a wait with a deadline, like Subscription.get
        accept: Accepts | None = None,
    ) -> Delivery | None:
        """The subscription's next delivery, or None after `timeout` seconds without one.

        Meanwhile a waiter may send live events itself: each delivery that `accept.accept_live`
        takes (cursor moved) is sent by the waiter, in order, and not returned. Hence
        None may come before `timeout` when events went out that way.

        Raises `BrokerNotConnectedError` when the subscription closed."""
        ...

    async def pause(self, seconds: float) -> None:
        """Let `seconds` pass (a store poll's interval, a retry's back-off)."""
        ...


class PlainWaiter:
    """Waiting with nothing else to do meanwhile."""

    async def next_delivery(
        self,
        subscription: Subscription,
        timeout: float,  # noqa: ASYNC109 -- see StreamWaiter
        accept: Accepts | None = None,
    ) -> Delivery | None:
        return await subscription.get(timeout=timeout)

    async def pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
