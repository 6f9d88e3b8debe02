"""One SSE stream's end of its response: writes, waits, heartbeats, ticks (api/sse_response.py).

`SseClient` is what a `TaskEventStream` waits through (`api.stream_wait.StreamWaiter`)
and what the process's `StreamTicker` looks at every tick (`Ticked`). It lives in
the one task that serves the request: parked in `receive()` while it waits, woken
by a cancellation of its own (flagged, then `Task.uncancel()`), so an idle stream
holds no second task and no timer.
"""

from __future__ import annotations

import asyncio
import math

from starlette.types import Receive, Send

from api.stream_ticker import StreamTicker
from broker import Delivery, Subscription
from broker.fanout import FanoutSubscription

PING = b": ping\n\n"


class ServerClosingError(Exception):
    """The server is shutting down: the stream ends now, and its client reconnects."""


class ClientGoneError(Exception):
    """The client disconnected: the stream ends, releasing what it held."""


class SseClient:
    """One stream's end of the response: its writes, its waits, its ticks.

    Implements `api.stream_wait.StreamWaiter` (the stream waits through it) and
    `api.stream_ticker.Ticked` (the process's clock looks at it every tick).
    """

    __slots__ = (
        "_loop",
        "_receive",
        "_send",
        "_task",
        "_ticker",
        "_timer",
        "closing",
        "deadline",
        "next_ping",
        "parked",
        "ping_due",
        "sending_since",
        "timed_out",
        "woken",
    )

    def __init__(self, receive: Receive, send: Send, ticker: StreamTicker) -> None:
        task = asyncio.current_task()
        assert task is not None  # an ASGI app always runs in a task
        self._task = task
        self._loop = asyncio.get_running_loop()
        self._receive = receive
        self._send = send
        self._ticker = ticker
        self._timer: asyncio.TimerHandle | None = None
        self.parked = False  # suspended in receive(), and only there
        self.woken = False  # a cancellation of ours is on its way
        self.timed_out = False
        self.closing = False
        self.ping_due = False
        self.deadline = math.inf  # while parked: when the wait ends (the ticker wakes it)
        self.next_ping = self._loop.time() + ticker.heartbeat
        self.sending_since = 0.0

    @property
    def task(self) -> asyncio.Task[object]:
        return self._task

    async def write(self, body: bytes) -> None:
        self.sending_since = self._loop.time()
        try:
            await self._send({"type": "http.response.body", "body": body, "more_body": True})
        finally:
            self.sending_since = 0.0

    # --- the ticker's side ---------------------------------------------------------

    def on_tick(self, now: float) -> None:
        if self.sending_since and now - self.sending_since >= self._ticker.send_timeout:
            if not self.timed_out:
                self.timed_out = True
                self._task.cancel()
            return
        if now >= self.next_ping - self._ticker.period / 2:
            self.next_ping = now + self._ticker.heartbeat
            self.ping_due = True
            self.wake()
        elif now >= self.deadline:
            self.wake()

    def close_soon(self) -> None:
        """End the stream at its next wait (the server is shutting down)."""
        self.closing = True
        self.wake()

    def wake(self) -> None:
        """Resume a parked wait (from the fan-out, the ticker or a short timer)."""
        if self.parked and not self.woken:
            self.woken = True
            self._task.cancel()

    # --- the stream's side (StreamWaiter) ------------------------------------------

    async def next_delivery(self, subscription: Subscription, timeout: float) -> Delivery | None:  # noqa: ASYNC109 -- see StreamWaiter
        if not isinstance(subscription, FanoutSubscription):  # not a broker of this repo
            return await self._plain_next(subscription, timeout)
        deadline = self._loop.time() + timeout
        subscription.waker = self.wake
        try:
            while True:
                if self.closing:
                    raise ServerClosingError
                delivery = subscription.get_nowait()
                if delivery is not None:
                    return delivery
                if self.ping_due:
                    await self.ping()
                elif self._loop.time() >= deadline:
                    return None
                else:
                    await self._park(deadline)
        finally:
            subscription.waker = None

    async def pause(self, seconds: float) -> None:
        deadline = self._loop.time() + seconds
        while True:
            if self.closing:
                raise ServerClosingError
            if self.ping_due:
                await self.ping()
            elif self._loop.time() >= deadline:
                return
            else:
                await self._park(deadline)

    async def ping(self) -> None:
        self.ping_due = False
        await self.write(PING)

    async def _plain_next(self, subscription: Subscription, timeout: float) -> Delivery | None:  # noqa: ASYNC109
        deadline = self._loop.time() + timeout
        while True:
            if self.ping_due:
                await self.ping()
            left = deadline - self._loop.time()
            if left <= 0:
                return None
            delivery = await subscription.get(timeout=min(left, self._ticker.period))
            if delivery is not None:
                return delivery

    async def _park(self, deadline: float) -> None:
        """Wait in `receive()` until woken or the client leaves (ClientGoneError)."""
        if deadline - self._loop.time() < self._ticker.period:
            self._timer = self._loop.call_at(deadline, self.wake)
        else:
            self.deadline = deadline
        self.parked = True
        try:
            message = await self._receive()
        except asyncio.CancelledError:
            if not self.woken or self.timed_out:
                raise
            self.woken = False
            if self._task.uncancel() > 0:
                raise  # cancelled by someone else too (shutdown): pass it on
            return
        finally:
            self.parked = False
            self.deadline = math.inf
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        self.woken = False  # an `http.request` (the GET's empty body): wait on
