"""Run a coroutine to completion from synchronous code, whatever loop is around.

The launcher and the pytest session fixtures are synchronous, but the Temporal
client and the migration runner are async. `asyncio.run()` refuses to run
inside a running loop and, when it finishes, clears the thread's current event
loop, which would pull the rug from under pytest-asyncio's session loop. A
private thread with its own loop avoids both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """`asyncio.run(factory())` in a fresh thread; returns its result or raises its error."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="devstack-aio") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()
