"""A cheap SSE client on raw asyncio sockets: thousands of them fit in one process.

HTTP/1.1 GET, chunked transfer decoding, and the project's SSE parser
(`cli.sse`, the one the CLI and the tests use). Each frame is kept with the
wall-clock time its last chunk arrived (`time.time()`, the clock Postgres and
the recording activity stamp events with), taken before the chunk is parsed,
so parsing adds nothing to the latency measured; the JSON of the events is
decoded only after the run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from cli import sse


@dataclass(slots=True)
class Frame:
    """One block of the stream and the wall-clock time the chunk that completed it arrived."""

    received: float
    frame: sse.Frame

    @property
    def data(self) -> str:
        return self.frame.data

    @property
    def is_event(self) -> bool:
        """A task event: the stream's first frame, the task's snapshot, is none."""
        return self.frame.is_event and self.frame.event != "snapshot"


@dataclass(eq=False)
class SseConnection(asyncio.Protocol):
    """One SSE stream. `opened` resolves with the HTTP status once headers arrive."""

    request: bytes
    keep_frames: bool = True
    on_frame: Callable[[SseConnection, Frame], None] | None = None
    frames: list[Frame] = field(default_factory=list)
    event_count: int = 0
    status: int | None = None
    opened: asyncio.Future[int] = field(init=False)
    closed: asyncio.Future[None] = field(init=False)
    opened_at: float = 0.0
    _transport: asyncio.Transport | None = None
    _head: bytes = b""
    _chunked: bytes = b""
    _parser: sse.SSEParser = field(default_factory=sse.SSEParser)
    _headers_done: bool = False

    def __post_init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.opened = loop.create_future()
        self.closed = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if not self._headers_done:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self._head[:end], self._head[end + 4 :]
            self._head = b""
            self._headers_done = True
            self.status = int(head.split(b" ", 2)[1])
            self.opened_at = now
            if not self.opened.done():
                self.opened.set_result(self.status)
        self._chunked += data
        for body in self._decode_chunks():
            self._parse(body, now)

    def _decode_chunks(self) -> Iterator[bytes]:
        """The body bytes of every complete chunk received so far (transfer decoding)."""
        while True:
            line_end = self._chunked.find(b"\r\n")
            if line_end < 0:
                return
            size = int(self._chunked[:line_end].split(b";")[0], 16)
            if size == 0:
                self._chunked = b""
                self.close()
                return
            start = line_end + 2
            if len(self._chunked) < start + size + 2:
                return
            yield self._chunked[start : start + size]
            self._chunked = self._chunked[start + size + 2 :]

    def _parse(self, body: bytes, now: float) -> None:
        for parsed in self._parser.feed(body):
            frame = Frame(now, parsed)
            if frame.is_event:
                self.event_count += 1
            if self.keep_frames:
                self.frames.append(frame)
            if self.on_frame is not None:
                self.on_frame(self, frame)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed before the headers"))
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def get_request(host: str, port: int, path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
    ).encode()


async def open_stream(
    host: str,
    port: int,
    path: str,
    *,
    keep_frames: bool = True,
    on_frame: Callable[[SseConnection, Frame], None] | None = None,
) -> SseConnection:
    """Connect and send the request; await `.opened` for the status, `.closed` for the end."""
    loop = asyncio.get_running_loop()
    request = get_request(host, port, path)
    _, protocol = await loop.create_connection(
        lambda: SseConnection(request, keep_frames=keep_frames, on_frame=on_frame), host, port
    )
    return protocol
