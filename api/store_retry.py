"""Store reads that wait out a store which does not answer in time.

A stream has sent its headers before it reads the store (the snapshot, the history),
so a failed read could only end it with `event: error`. A pool that hands out no
connection in time (hundreds of streams opening at once on a loaded machine) or a
connection that broke is usually gone a moment later: the stream reads again with
back-off, its client kept, until its idle deadline; only past that does the error
reach the client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg
from psycopg_pool import PoolTimeout

T = TypeVar("T")

# Back-off of a stream's store read after a failure: first wait, most.
STORE_RETRY_SECONDS = (0.2, 5.0)
RETRIED = (PoolTimeout, psycopg.OperationalError)


async def read_patiently(
    read: Callable[[], Awaitable[T]],
    *,
    deadline: float,
    pause: Callable[[float], Awaitable[None]],
    on_retry: Callable[[Exception], None],
) -> T:
    """`read()`, again after `pause(delay)` while it fails with a store error and the
    next try still starts before `deadline` (the event loop's clock); then the error."""
    delay = STORE_RETRY_SECONDS[0]
    while True:
        try:
            return await read()
        except RETRIED as exc:
            if asyncio.get_running_loop().time() + delay >= deadline:
                raise
            on_retry(exc)
            await pause(delay)
            delay = min(delay * 2, STORE_RETRY_SECONDS[1])
