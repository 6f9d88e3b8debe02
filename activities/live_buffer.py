"""Coalescing of what step code writes (output chunks, metadata patches, progress):
many small writes become few events, each write out within `linger` seconds.

`LiveBuffer` holds what was written since the last flush and a pump task writes it:
at once when nothing was written for `linger` seconds (a lone write costs no added
latency), else `linger` after the previous flush began. So a writer costs at most one
flush per `linger` whatever its rate, and no write waits more than `linger` plus the
time the previous flush takes. Consecutive text chunks of a stream are joined, JSON
items listed, metadata patches merged (later keys win) and only the latest progress
kept. Past `max_pending` characters (or items) pending, a writer waits for the flush:
memory stays bounded when the store is slower than the writer.

No Temporal, no I/O: `write` is given. A failure of `write` is raised to the writer at
its next call (or at `close`); the batch that failed is not retried here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from broker.cancelling import cancel_until_done

# 40 ms, not the 50 ms promised as the most coalescing may add: the pump's timer fires a
# little late and the flush stamps its envelopes after it wakes (measured on an idle
# machine with 50 ms: write -> recorded p99 50.6-50.9 ms).
LINGER_SECONDS = 0.04
MAX_PENDING = 64 * 1024


@dataclass
class Chunk:
    stream: str
    text: str | None = None
    items: list[Any] | None = None

    @property
    def size(self) -> int:
        return len(self.text) if self.text is not None else len(self.items or ())


@dataclass
class Batch:
    """What one flush writes: output chunks first (in order), then metadata, then progress,
    so metadata about the output (e.g. a token count) never runs ahead of it."""

    chunks: list[Chunk] = field(default_factory=list)
    metadata: dict[str, Any] | None = None
    progress: tuple[float, str | None] | None = None

    def __bool__(self) -> bool:
        return bool(self.chunks) or self.metadata is not None or self.progress is not None

    @property
    def size(self) -> int:
        return sum(chunk.size for chunk in self.chunks)


class LiveBuffer:
    def __init__(
        self,
        write: Callable[[Batch], Awaitable[None]],
        *,
        linger: float = LINGER_SECONDS,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self._write = write
        self._linger = linger
        self._max_pending = max_pending
        self._pending = Batch()
        self._changed = asyncio.Condition()
        self._taken = 0  # writes handed to a flush so far
        self._added = 0  # writes so far
        self._written = 0  # writes whose flush finished
        self._urgent = False
        self._error: BaseException | None = None
        self._last_flush = -float("inf")
        self._pump: asyncio.Task[None] | None = None
        self.flushes = 0

    async def output(self, stream: str, *, text: str | None = None, item: Any = None) -> None:
        last = self._pending.chunks[-1] if self._pending.chunks else None
        if text is not None:
            if last is not None and last.stream == stream and last.text is not None:
                last.text += text
            else:
                self._pending.chunks.append(Chunk(stream, text=text))
        elif last is not None and last.stream == stream and last.items is not None:
            last.items.append(item)
        else:
            self._pending.chunks.append(Chunk(stream, items=[item]))
        await self._added_one(self._pending.size >= self._max_pending)

    async def metadata(self, patch: dict[str, Any]) -> None:
        self._pending.metadata = {**(self._pending.metadata or {}), **patch}
        await self._added_one(False)

    async def progress(self, fraction: float, message: str | None) -> None:
        self._pending.progress = (fraction, message)
        await self._added_one(False)

    async def flush(self) -> None:
        """Everything written so far, written now (raises what a flush raised)."""
        self._raise_failure()
        if self._added == self._written:
            return
        await self._wait_written(self._added)

    async def close(self) -> None:
        """Flush, then stop the pump. Raises what a flush raised."""
        try:
            await self.flush()
        finally:
            await cancel_until_done((self._pump,))
            self._pump = None

    async def _added_one(self, full: bool) -> None:
        self._raise_failure()
        self._added += 1
        if self._pump is None:
            self._pump = asyncio.create_task(self._run(), name="live-buffer-pump")
        async with self._changed:
            self._changed.notify_all()
        if full:
            await self._wait_written(self._added)

    async def _wait_written(self, target: int) -> None:
        async with self._changed:
            self._urgent = True
            self._changed.notify_all()
            await self._changed.wait_for(lambda: self._written >= target or self._error)
        self._raise_failure()

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda: self._added > self._taken)
                due = self._last_flush + self._linger
                if not self._urgent and loop.time() < due:
                    # Wait out the linger, unless a flush is asked for meanwhile.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            self._changed.wait_for(lambda: self._urgent), due - loop.time()
                        )
                batch, self._pending = self._pending, Batch()
                target, self._taken = self._added, self._added
                self._urgent = False
            self._last_flush = loop.time()
            try:
                await self._write(batch)
                self.flushes += 1
            except Exception as exc:  # noqa: BLE001 - handed to the writer at its next call
                self._error = exc
            async with self._changed:
                self._written = target
                self._changed.notify_all()
            if self._error is not None:
                return
