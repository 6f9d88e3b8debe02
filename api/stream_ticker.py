"""The one clock of a process's SSE streams: heartbeats, idle deadlines, send timeouts.

Thousands of idle streams need no timer each. One `loop.call_later` chain per
app ticks every `period` seconds (the heartbeat interval, or less when a
timeout is shorter) while at least one stream is open, and per tick looks at
every open stream (`Ticked`): a heartbeat due is flagged and the stream woken;
a stream parked past its deadline is woken; a stream stuck in one `send` for
longer than the send timeout is cancelled (its client stopped reading). With no
stream open the chain stops, so an idle process holds no timer at all.

Deadlines are kept to the tick: an idle stream ends up to one period after its
idle timeout (a period is at most a quarter of it), a send timeout fires up
to half a send timeout late. A wait shorter than a period (a store poll while
Redis is away) gets a timer of its own instead.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class Ticked(Protocol):
    def on_tick(self, now: float) -> None: ...

    def close_soon(self) -> None: ...


class StreamTicker:
    def __init__(
        self, *, heartbeat_seconds: float, idle_timeout_seconds: float, send_timeout_seconds: float
    ) -> None:
        self.heartbeat = heartbeat_seconds
        self.send_timeout = send_timeout_seconds
        self.period = min(heartbeat_seconds, idle_timeout_seconds / 4, send_timeout_seconds / 2)
        self._streams: set[Ticked] = set()
        self._handle: asyncio.TimerHandle | None = None
        self.ticks = 0

    def __len__(self) -> int:
        return len(self._streams)

    def add(self, stream: Ticked) -> None:
        self._streams.add(stream)
        if self._handle is None:
            self._schedule()

    def discard(self, stream: Ticked) -> None:
        self._streams.discard(stream)
        if not self._streams and self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def shutdown(self) -> None:
        """The server is exiting: every stream ends at its next wait (clients reconnect
        elsewhere) instead of holding the graceful shutdown until it times out."""
        for stream in list(self._streams):
            stream.close_soon()

    def _schedule(self) -> None:
        self._handle = asyncio.get_running_loop().call_later(self.period, self._tick)

    def _tick(self) -> None:
        self.ticks += 1
        self._schedule()
        now = asyncio.get_running_loop().time()
        for stream in list(self._streams):
            stream.on_tick(now)
