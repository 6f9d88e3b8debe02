"""Cancelling a loop until it has ended, even when its driver swallowed a cancel."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

log = logging.getLogger(__name__)

# How long a cancelled loop may take to end before it is cancelled again.
CANCEL_AGAIN_SECONDS = 1.0


async def cancel_until_done(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel `tasks` and wait for them; cancel again any that goes on.

    A driver can swallow a cancellation (redis-py: one that lands as a blocking read
    returns), and a loop that swallowed one simply runs on — a TaskGroup waiting for
    it would wait forever. Each further cancel lands at the loop's next await.
    """
    for task in tasks:
        task.cancel()
    pending = {task for task in tasks if not task.done()}
    while pending:
        _, pending = await asyncio.wait(pending, timeout=CANCEL_AGAIN_SECONDS)
        for task in pending:
            log.warning(
                "a worker loop went on after its cancellation; cancelling it again",
                extra={"loop": task.get_name()},
            )
            task.cancel()
