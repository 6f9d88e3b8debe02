"""Cancelling a loop until it has ended, even when its driver swallowed a cancel.

redis-py can swallow a cancellation that lands inside one of its calls (measured: a
`ShardedPubSub` watchdog cancelled while its CLUSTER SLOTS read was in flight went
on about one close in 200, `execute_command` returning normally with the task still
marked as cancelling). A loop that swallowed one simply runs on, and whoever awaits
it — a broker's `close()`, a TaskGroup — waits forever. So every loop the broker or
the worker stops is stopped here: cancelled, then cancelled again while it runs on;
each further cancel lands at the loop's next await.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

# How long a cancelled loop may take to end before it is cancelled again.
CANCEL_AGAIN_SECONDS = 1.0


async def cancel_until_done(
    tasks: Iterable[asyncio.Task[Any] | None], *, again_after: float = CANCEL_AGAIN_SECONDS
) -> None:
    """Cancel `tasks` (None entries are skipped) and wait until every one has ended.

    What a task raised is retrieved (nobody is told "exception never retrieved"), not
    re-raised: the caller is stopping it.
    """
    started = [task for task in tasks if task is not None]
    for task in started:
        task.cancel()
    pending = {task for task in started if not task.done()}
    while pending:
        _, pending = await asyncio.wait(pending, timeout=again_after)
        for task in pending:
            log.warning(
                "a loop went on after its cancellation; cancelling it again",
                extra={"loop": task.get_name()},
            )
            task.cancel()
    for task in started:
        if not task.cancelled() and (failure := task.exception()) is not None:
            log.debug(
                "a stopped loop had ended on an error",
                extra={"loop": task.get_name()},
                exc_info=failure,
            )
