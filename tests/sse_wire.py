"""SSE clients for tests that need the wire itself: raw sockets and a faithful EventSource.

`SSEConnection` speaks just enough HTTP/1.1 over one asyncio connection to
read an event stream, and can misbehave on purpose: stop reading, shrink its
receive buffer, or reset the connection (RST, SO_LINGER 0) at any moment.

`EventSourceMimic` follows the WHATWG `EventSource` processing model, the
way a browser does: the same URL on every connection, `Last-Event-ID` from
the last *dispatched* event, `retry:` as the reconnection delay, reconnect
after the stream ends or the network fails, stop for good on any answer that
is not `200 text/event-stream` (a 204 included).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from cli.sse import Frame, SSEParser

# What `EventSource` dispatches: a frame with data (`is_event`), read as `type`, `data`
# and `last_event_id`.
Event = Frame


class SSEConnection:
    """One GET of an event stream over a raw socket."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, last_event_id: str = ""
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""  # a non-stream answer's body
        self.parser = SSEParser(last_event_id)
        self.comments: list[str] = []  # every comment line read (the heartbeats)
        self._chunk_left = 0
        self._chunked = False
        self.ended = False

    @classmethod
    async def open(
        cls,
        url: str,
        headers: dict[str, str] | None = None,
        *,
        receive_buffer: int | None = None,
        read_head: bool = True,
    ) -> SSEConnection:
        parts = urlsplit(url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:  # before connect, so the window is small from the start
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
        except BaseException:
            sock.close()
            raise
        reader, writer = await asyncio.open_connection(sock=sock)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", "Accept: text/event-stream"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        connection = cls(reader, writer, (headers or {}).get("Last-Event-ID", ""))
        if read_head:
            await connection.read_head()
        return connection

    async def read_head(self) -> None:
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                self.headers[name.strip().lower()] = value.strip()
        self._chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        if self.status != 200 or not self._chunked:
            length = int(self.headers.get("content-length", "0"))
            self.body = await self.reader.readexactly(length) if length else b""
            self.ended = True

    @property
    def is_event_stream(self) -> bool:
        return self.status == 200 and self.headers.get("content-type", "").startswith(
            "text/event-stream"
        )

    async def read_events(self) -> list[Event]:
        """The events in the next chunk(s) read; [] with `ended` set at the end of the stream."""
        while not self.ended:
            chunk = await self._next_chunk()
            if chunk is None:
                self.ended = True
                break
            frames = self.parser.feed(chunk)
            for frame in frames:
                self.comments.extend(frame.comments)
            # A listener per task event type, as the page has: the `snapshot` frame is
            # dispatched to nobody.
            events = [frame for frame in frames if frame.is_event and frame.type != "snapshot"]
            if events:
                return events
        return []

    async def _next_chunk(self) -> bytes | None:
        if self._chunk_left == 0:
            size_line = await self.reader.readline()
            if not size_line:
                return None
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await self.reader.readline()
                return None
            self._chunk_left = size
        data = await self.reader.read(self._chunk_left)
        if not data:
            return None
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            await self.reader.readexactly(2)  # the CRLF after the chunk
        return data

    def reset(self) -> None:
        """Close with RST instead of FIN, as a crashed client or a dropped route would."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


@dataclass
class Attempt:
    """One connection attempt of an `EventSourceMimic`."""

    last_event_id: str | None  # the header sent, None when absent
    events_before: int  # events dispatched before this attempt
    status: int | None = None  # None: a network error (refused, reset)


@dataclass
class EventSourceMimic:
    url: str
    reconnection_ms: int = 3000  # a browser's default; the server's `retry:` overrides it
    events: list[Event] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    last_event_id: str = ""
    closed: bool = False  # readyState CLOSED: the connection failed for good

    async def run(self, *, max_attempts: int = 100) -> None:
        """Connect, read, reconnect... until the connection fails for good (e.g. a 204)."""
        while not self.closed and len(self.attempts) < max_attempts:
            headers = {"Cache-Control": "no-cache"}
            if self.last_event_id:
                headers["Last-Event-ID"] = self.last_event_id
            attempt = Attempt(headers.get("Last-Event-ID"), len(self.events))
            self.attempts.append(attempt)
            try:
                connection = await SSEConnection.open(self.url, headers)
            except OSError:
                await self._wait()  # a network error: reestablish the connection
                continue
            attempt.status = connection.status
            if not connection.is_event_stream:
                self.closed = True  # "fail the connection": no reconnect, whatever the status
                await connection.close()
                return
            try:
                while not connection.ended:
                    self.events.extend(await connection.read_events())
                    if connection.parser.retry is not None:
                        self.reconnection_ms = connection.parser.retry
            except (OSError, asyncio.IncompleteReadError):
                pass  # the server went away mid-stream
            finally:
                self.last_event_id = connection.parser.last_event_id
                await connection.close()
            await self._wait()

    async def _wait(self) -> None:
        await asyncio.sleep(self.reconnection_ms / 1000)
