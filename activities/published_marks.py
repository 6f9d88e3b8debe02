"""Marking published outbox rows in batches, a moment after their publish.

The recorder used to mark each row right after publishing its event: one more
Postgres statement (and commit) per event, on the recording path. Marks are
bookkeeping, not delivery: a row left pending is published again by an outbox
relay once it is older than the grace period, at worst once more, and every
consumer drops what it already has by sequence. So the recorder hands the row's id
here and moves on; ids gathered for `delay` seconds are marked by one statement.

`delay` must stay well inside the relays' grace period (default 2 s), so a relay
never takes a row whose mark is merely on its way. A mark that fails, or that a
stopping process never sends, leaves the row to the relay, as before.
"""

from __future__ import annotations

import asyncio
import logging

import psycopg

from store import Outbox

log = logging.getLogger(__name__)

# How long ids gather before one statement marks them (issue 15): at 100 events/s that
# is ~5 rows a statement instead of one each; the grace period is 40 times longer.
MARK_DELAY_SECONDS = 0.05


class PublishedMarks:
    def __init__(self, outbox: Outbox, *, delay: float, timeout: float) -> None:
        self._outbox = outbox
        self._delay = delay
        self._timeout = timeout
        self._pending: list[int] = []
        self._flusher: asyncio.Task[None] | None = None
        # Held while marking: a `flush` returns only once marks already on their way landed.
        self._marking = asyncio.Lock()

    def add(self, outbox_id: int) -> None:
        """Mark this published row soon (with the others of the next `delay`)."""
        self._pending.append(outbox_id)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush_later(), name="outbox-marks"
            )

    async def flush(self) -> None:
        """Mark what is pending now (a stopping process, a test that reads the outbox),
        after any marks the delayed flush is sending."""
        async with self._marking:
            await self._mark_pending()

    async def _mark_pending(self) -> None:
        while self._pending:
            ids, self._pending = self._pending, []
            try:
                async with asyncio.timeout(self._timeout):
                    await self._outbox.mark_published_many(ids)
            except (psycopg.Error, TimeoutError) as exc:
                log.warning(
                    "outbox marks failed; the relay will see to the rows",
                    extra={"rows": len(ids), "error": str(exc) or type(exc).__name__},
                )

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._delay)
        await self.flush()
