"""One SSE stream's end of its response: writes, waits, heartbeats, ticks (api/sse_response.py).

`SseClient` is what a `TaskEventStream` waits through (`api.stream_wait.StreamWaiter`)
and what the process's `StreamTicker` looks at every tick (`Ticked`). It lives in
the one task that serves the request: parked in `receive()` while it waits, woken
by a cancellation of its own (flagged, then `Task.uncancel()`), so an idle stream
holds no second task and no timer.

A live event for a stream that waits with nothing queued is written by the fan-out
itself (`take`, called from the broker's dispatch): when the stream accepts it as its
next event (in order, valid, not its task's last), its frame goes through the server's
`send` at once and the stream stays parked, no wake, no batch. A `send` that has to
wait (the client's socket buffer is full: uvicorn's flow control) is handed to the
stream's task, which finishes it under the usual send timeout before anything else.
Everything else (a gap, a resync, a duplicate, a terminal event, a stream busy
writing or about to wake) is queued and taken by the stream's task as before.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Coroutine

from starlette.types import Receive, Send

from api.event_versions import EventVersion
from api.sse_frames import live_frame
from api.sse_rest_of_send import RestOfSend
from api.stream_ticker import StreamTicker
from api.stream_wait import Accepts
from broker import Delivery, Subscription
from broker.fanout import FanoutSubscription
from telemetry.tracing import tracing_enabled

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
        "_accept",
        "_loop",
        "_pending",
        "_receive",
        "_send",
        "_task",
        "_ticker",
        "_timer",
        "_version",
        "closing",
        "deadline",
        "next_ping",
        "parked",
        "ping_due",
        "sending_since",
        "timed_out",
        "woken",
    )

    def __init__(
        self,
        receive: Receive,
        send: Send,
        ticker: StreamTicker,
        version: EventVersion | None = None,
    ) -> None:
        """`version`: the frames' version when the fan-out may write live events through
        `send` directly (the server's own `send`); None: always through this task."""
        task = asyncio.current_task()
        assert task is not None  # an ASGI app always runs in a task
        self._task = task
        self._loop = asyncio.get_running_loop()
        self._receive = receive
        self._send = send
        self._ticker = ticker
        self._timer: asyncio.TimerHandle | None = None
        self._version = version
        # While waiting in `next_delivery`: the stream's test of a live delivery.
        self._accept: Accepts | None = None
        # A direct write this task must finish (or its error), before anything else.
        self._pending: Awaitable[None] | Exception | None = None
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

    async def next_delivery(
        self,
        subscription: Subscription,
        timeout: float,  # noqa: ASYNC109 -- see StreamWaiter
        accept: Accepts | None = None,
    ) -> Delivery | None:
        if not isinstance(subscription, FanoutSubscription):  # not a broker of this repo
            return await self._plain_next(subscription, timeout)
        deadline = self._loop.time() + timeout
        subscription.waker = self.wake
        if accept is not None and self._version is not None:
            self._accept = accept
            subscription.taker = self  # `take`
        try:
            while True:
                if self._pending is not None:
                    await self._finish_write()
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
            subscription.taker = None
            self._accept = None
            pending, self._pending = self._pending, None
            if isinstance(pending, RestOfSend):  # the stream ends: its write with it
                pending.close()

    def take(self, delivery: Delivery) -> bool:
        """Write a live delivery now, from the fan-out (the subscription's `taker`): True
        when it is written, or handed to this task to finish; False leaves it to the queue.

        Only while parked (no write of this task in flight, nothing queued before it: the
        fan-out asks only with an empty queue) and not about to wake; only what the stream
        accepts as its next event (`accept_live` moves its cursor). Never raises: the fan-out
        goes on to the other subscribers."""
        accept = self._accept
        version = self._version
        if (
            not self.parked
            or self.woken
            or self.closing
            or accept is None
            or version is None
            or tracing_enabled()  # a CONSUMER span per write: the task writes, in its context
        ):
            return False
        try:
            live = accept.accept_live(delivery)
            if live is None:
                return False
            sending = self._send(
                {"type": "http.response.body", "body": live_frame(live, version), "more_body": True}
            )
            if not isinstance(sending, Coroutine):  # not one to drive by hand: the task awaits it
                self._pending = sending
                self.wake()
                return True
            try:
                waiting = sending.send(None)
            except StopIteration:
                return True  # written (the common case: nothing to wait for)
            # The transport is paused: this task finishes the send, under the send timeout.
            self._pending = RestOfSend(sending, waiting)
            self.sending_since = self._loop.time()
        except Exception as exc:  # noqa: BLE001 -- raised in the stream's task, as its own write's
            self._pending = exc
        self.wake()
        return True

    async def _finish_write(self) -> None:
        pending, self._pending = self._pending, None
        if isinstance(pending, Exception):
            raise pending
        if pending is not None:
            try:
                await pending
            finally:
                self.sending_since = 0.0

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
