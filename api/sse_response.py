"""The SSE response of `GET /tasks/{id}/events`: a plain ASGI response, ONE task per stream.

It replaced sse-starlette's `EventSourceResponse`, whose four tasks per stream
(body, pings, disconnect watch, shutdown watch, in an anyio task group) cost
~32 KiB of memory per idle stream and most of the CPU of a live delivery
(docs/performance.md). Here the task uvicorn runs the request in does it all:

- it pulls the stream's batches (`TaskEventStream.batches`) and writes each as
  ONE body chunk (a history page of 500 events is one `send`);
- when the stream waits (for a live event, or out a pause while Redis is away),
  it waits through this response's `SseClient`: parked in `receive()`, which
  returns `http.disconnect` the moment the client goes, so a vanished client
  releases everything at once. A delivery for the stream (the fan-out calls
  the subscription's `waker`) or the process's ticker (a heartbeat due, a
  deadline passed) wakes it by cancelling that `receive()`: the cancellation
  is ours (flagged, then `Task.uncancel()`), any other is passed on;
- the heartbeat (`: ping`) and the idle and send timeouts run on the process's
  one `StreamTicker`: no timer per stream while it is idle.

Live frames come from `api.live_events`: built once per message for every
stream of the task. The response holds a slot of the process's and the tenant's
stream caps for exactly its lifetime (503 / 429 past them).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from api.event_versions import EventVersion
from api.sse_client import ClientGoneError, ServerClosingError, SseClient
from api.sse_frames import event_frame, live_frame
from api.sse_handoff import HANDOFF, Handoff
from api.stream_events import OutgoingEvent
from api.stream_ticker import StreamTicker
from telemetry.tracing import event_span, tracing_enabled

log = logging.getLogger(__name__)

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]


SENT: list[tuple[bytes, bytes]] = []  # a response's headers once sent (never appended to)


class EventStreamResponse(Response):
    """Marks a route's SSE response in the OpenAPI document (the real one is below)."""

    media_type = "text/event-stream"


class TaskEventResponse(EventStreamResponse):
    """Headers, the opening frames (`retry:`), then the stream's events until it ends.

    `admit(scope, receive, send)` takes the stream's slots, or answers the refusal
    itself and returns None; otherwise it returns what gives the slots back.
    An error after the headers can only travel inside the stream: `event: error`.
    """

    def __init__(
        self,
        body: Callable[[SseClient], AsyncGenerator[list[OutgoingEvent], None]],
        *,
        opening: bytes,
        first_frames: Callable[[], Awaitable[bytes]] | None = None,
        version: EventVersion,
        ticker: StreamTicker,
        admit: Callable[[Scope, Receive, Send], Awaitable[Callable[[], None] | None]],
        on_error: Callable[[Exception], dict[str, object]],
        on_send_timeout: Callable[[], None],
    ) -> None:
        # Not Response.__init__: no body, hence no content-length.
        self.status_code = 200
        self.background = None
        self.raw_headers = list(HEADERS)
        self._body = body
        self._opening = opening
        self._first_frames = first_frames
        self._version = version
        self._ticker = ticker
        self._admit = admit
        self._on_error = on_error
        self._on_send_timeout = on_send_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handoff: Handoff | None = scope.get(HANDOFF)
        if handoff is None or handoff.taken:  # no `StreamHandoffApp` outside: served in place
            await self._serve(scope, receive, send)
            return
        # Admission and the response start go through every middleware (refusals and
        # headers are theirs); the stream itself is served by `StreamHandoffApp`, in front.
        release = await self._open(scope, receive, send)
        if release is not None:
            stream = self._streaming(release)  # this response is dropped with the frames
            # The server's own `send`: the fan-out may write a live frame through it directly.
            serve = functools.partial(stream.run, handoff.receive, handoff.send, direct=True)
            handoff.hand(serve, release)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        release = await self._open(scope, receive, send)
        if release is not None:
            await self._streaming(release).run(receive, send)

    def _streaming(self, release: Callable[[], None]) -> _Streaming:
        first_frames, self._first_frames = self._first_frames, None
        return _Streaming(
            self._body,
            self._opening,
            first_frames,
            self._version,
            self._ticker,
            self._on_error,
            self._on_send_timeout,
            release,
        )

    async def _open(self, scope: Scope, receive: Receive, send: Send) -> Callable[[], None] | None:
        """Admit the stream and send the response start; the stream's release, or None
        when there is nothing to stream (refused, or a HEAD request: released already)."""
        release = await self._admit(scope, receive, send)
        if release is None:
            return None
        try:
            await self._start(scope, send)
        except BaseException:
            release()
            raise
        if scope["method"] == "HEAD":
            release()
            return None
        return release

    async def _start(self, scope: Scope, send: Send) -> None:
        headers, self.raw_headers = self.raw_headers, SENT  # not kept for the stream's life
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if scope["method"] == "HEAD":
            await send({"type": "http.response.body", "body": b""})


class _Streaming:
    """What a stream needs for its life, and no more: the response object (a Starlette
    `Response`, with a `__dict__`) and its admission are gone once the stream runs.

    No frame of it keeps a sent batch, frame or snapshot while the stream waits: an idle
    stream would otherwise hold its last history page (up to a page of events) and its
    snapshot for its whole life.
    """

    __slots__ = (
        "_body",
        "_first_frames",
        "_on_error",
        "_on_send_timeout",
        "_opening",
        "_release",
        "_ticker",
        "_version",
    )

    def __init__(
        self,
        body: Callable[[SseClient], AsyncGenerator[list[OutgoingEvent], None]],
        opening: bytes,
        first_frames: Callable[[], Awaitable[bytes]] | None,
        version: EventVersion,
        ticker: StreamTicker,
        on_error: Callable[[Exception], dict[str, object]],
        on_send_timeout: Callable[[], None],
        release: Callable[[], None],
    ) -> None:
        self._body = body
        self._opening = opening
        self._first_frames = first_frames
        self._version = version
        self._ticker = ticker
        self._on_error = on_error
        self._on_send_timeout = on_send_timeout
        self._release = release

    async def run(self, receive: Receive, send: Send, *, direct: bool = False) -> None:
        """The stream, then its release (its slots), however it ends.

        `direct`: `send` is the server's own (no middleware's wrapper), so the fan-out
        may write a live event through it while the stream waits (`SseClient.take`)."""
        try:
            client = SseClient(receive, send, self._ticker, self._version if direct else None)
            self._ticker.add(client)
            try:
                if self._opening:
                    await client.write(self._opening)
                try:
                    if self._first_frames is not None:  # the snapshot (no `id`), then the events
                        await self._write_first(client)
                    await self._write_events(client)
                except ClientGoneError:
                    return
                except ServerClosingError:
                    pass  # the body ends below: the client reconnects (to another process)
                except Exception as exc:  # noqa: BLE001 -- the headers are out: it goes in-stream
                    await client.write(error_frame(self._on_error(exc)))
                await send({"type": "http.response.body", "body": b""})
            except ClientGoneError:
                return
            except asyncio.CancelledError:
                if not client.timed_out or client.task.uncancel() > 0:
                    raise
                self._on_send_timeout()
            finally:
                self._ticker.discard(client)
        finally:
            self._release()

    async def _write_first(self, client: SseClient) -> None:
        first_frames, self._first_frames = self._first_frames, None
        if first_frames is not None:
            first = await first_frames()
            if first:
                await client.write(first)

    async def _write_events(self, client: SseClient) -> None:
        version = self._version
        async with contextlib.aclosing(self._body(client)) as batches:
            async for batch in batches:
                frames = [frame_of(event, version) for event in batch]
                body = frames[0] if len(frames) == 1 else b"".join(frames)
                if tracing_enabled():
                    with delivery_spans(batch):
                        await client.write(body)
                else:
                    await client.write(body)
                del batch, frames, body  # not held while the next batch is awaited


def frame_of(event: OutgoingEvent, version: EventVersion) -> bytes:
    """The event's frame; a live event's is built once for every stream of its task."""
    if event.shared is not None:
        return live_frame(event.shared, version)
    return event_frame(event.sequence, event.event_type, event.envelope_json, version)


def error_frame(problem: dict[str, object]) -> bytes:
    return f"event: error\ndata: {json.dumps(problem)}\n\n".encode()


@contextlib.contextmanager
def delivery_spans(batch: list[OutgoingEvent]) -> Iterator[None]:
    """One CONSUMER span per event written, joining the task's trace (tracing on only)."""
    if not tracing_enabled():
        yield
        return
    with contextlib.ExitStack() as stack:
        for event in batch:
            fields: dict[str, str | int] = {
                "taskplane.event_type": event.event_type,
                "taskplane.sequence": event.sequence,
            }
            stack.enter_context(event_span("sse deliver", event.envelope_json, fields))
        yield
