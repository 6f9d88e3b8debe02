"""The project's one reader of the `text/event-stream` format (WHATWG HTML, "Server-sent events").

`SSEParser` is fed the stream's bytes as they arrive, in chunks of any size,
and returns each block the blank lines delimit as a `Frame`. It follows the
spec's interpretation: lines end in CRLF, LF or CR (a CRLF split across two
chunks is one line end); one leading byte-order mark is dropped; a line
starting with a colon is a comment; a field without a colon has an empty
value, and one space after the colon is not part of the value; the `data`
lines of a block are joined with LF; an `id` containing NUL is ignored; a
`retry` that is not all ASCII digits is ignored; unknown fields are ignored;
a block the stream ends without a blank line is dropped.

Its callers want different views of the same frames, so a frame keeps all of
them: the CLI (`cli/watch.py`) reads the `retry` of a block without data; the
tests look at comments (heartbeats) and at blocks as the server wrote them;
the browser-like client of the tests (`tests/sse_wire.py`) uses `is_event`
and `last_event_id` as `EventSource` dispatches them; the bench decodes only
the data of events. The parser itself does no I/O: `iter_frames` and
`aiter_frames` run it over any (async) iterable of byte chunks.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass

_BOM = codecs.BOM_UTF8


@dataclass(frozen=True, slots=True)
class Frame:
    """One block of the stream, up to the blank line that ends it."""

    event: str | None = None  # the `event` field, None without one
    data_lines: tuple[str, ...] = ()
    id: str | None = None  # the `id` field of this block, None without one (or with a NUL)
    retry: int | None = None  # the `retry` field (milliseconds), None without a valid one
    comments: tuple[str, ...] = ()
    # The stream's last event ID once this block is read: an `EventSource` keeps it across
    # blocks without an `id` and sends it back as `Last-Event-ID` when it reconnects.
    last_event_id: str = ""

    @property
    def is_event(self) -> bool:
        """True when `EventSource` would dispatch it: the block has at least one data line."""
        return bool(self.data_lines)

    @property
    def type(self) -> str:
        """The event's type as dispatched: "message" when the block names none."""
        return self.event or "message"

    @property
    def data(self) -> str:
        return "\n".join(self.data_lines)


class SSEParser:
    """Incremental: `feed` each chunk as it arrives; it returns the frames it completed."""

    def __init__(self, last_event_id: str = "") -> None:
        # The last event ID outlives a connection in a browser (it is the EventSource's):
        # a reconnection that resumes after `last_event_id` starts with it.
        self.last_event_id = last_event_id
        self._id_buffer = last_event_id  # set by `id`, made the last event ID by a blank line
        self.retry: int | None = None  # the latest reconnection delay the stream asked for, ms
        self._pending = b""
        self._at_start = True  # a BOM may still come
        self._after_cr = False  # the last chunk ended a line with CR: a LF next is its end
        self._reset_block()

    def feed(self, chunk: bytes) -> list[Frame]:
        """Every frame `chunk` completes, in order."""
        if not chunk:
            return []
        if self._after_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._after_cr = False
        pending = self._pending + chunk if self._pending else chunk
        if self._at_start:
            if len(pending) < len(_BOM) and _BOM.startswith(pending):
                self._pending = pending
                return []
            self._at_start = False
            pending = pending.removeprefix(_BOM)
        frames: list[Frame] = []
        start = 0
        while True:
            lf = pending.find(b"\n", start)
            cr = pending.find(b"\r", start, lf if lf >= 0 else len(pending))
            end = cr if cr >= 0 else lf
            if end < 0:
                break
            frame = self._line(pending[start:end].decode("utf-8", errors="replace"))
            if frame is not None:
                frames.append(frame)
            start = end + 1
            if end == cr:
                if start == len(pending):
                    self._after_cr = True
                elif pending[start : start + 1] == b"\n":
                    start += 1
        self._pending = pending[start:]
        return frames

    def _reset_block(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None
        self._comments: list[str] = []
        self._lines = 0

    def _line(self, line: str) -> Frame | None:
        if line == "":
            return self._end_block()
        self._lines += 1
        if line.startswith(":"):
            self._comments.append(line[1:].removeprefix(" "))
            return None
        name, colon, value = line.partition(":")
        value = value.removeprefix(" ") if colon else ""
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = self._id_buffer = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = self.retry = int(value)
        return None

    def _end_block(self) -> Frame | None:
        self.last_event_id = self._id_buffer
        if not self._lines:
            return None  # blank lines between blocks
        frame = Frame(
            event=self._event,
            data_lines=tuple(self._data),
            id=self._id,
            retry=self._retry,
            comments=tuple(self._comments),
            last_event_id=self.last_event_id,
        )
        self._reset_block()
        return frame


def iter_frames(chunks: Iterable[bytes], parser: SSEParser | None = None) -> Iterator[Frame]:
    """The frames of a whole stream, read chunk by chunk."""
    parser = parser if parser is not None else SSEParser()
    for chunk in chunks:
        yield from parser.feed(chunk)


async def aiter_frames(
    chunks: AsyncIterable[bytes], parser: SSEParser | None = None
) -> AsyncIterator[Frame]:
    """`iter_frames` for an async stream (httpx's `aiter_bytes()`, a socket reader)."""
    parser = parser if parser is not None else SSEParser()
    async for chunk in chunks:
        for frame in parser.feed(chunk):
            yield frame
