"""The tests' one way to wait for a condition that something else makes true.

`until` re-checks at a short interval and fails the test, naming what it
waited for, when the condition is still false after `within` seconds. The
bound is a deadline for a failure, never what the test proves: a passing
test returns as soon as the condition holds.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

INTERVAL_SECONDS = 0.02


async def until(
    check: Callable[[], bool | Awaitable[bool]], *, within: float = 10.0, what: str = ""
) -> None:
    """Return once `check()` (sync or async) is true; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            name = what or getattr(check, "__name__", "a condition")
            raise AssertionError(f"timed out after {within:g} s waiting for {name}")
        await asyncio.sleep(INTERVAL_SECONDS)
