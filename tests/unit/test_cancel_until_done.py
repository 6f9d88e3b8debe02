"""`cancel_until_done` ends a loop that swallowed its first cancellation."""

from __future__ import annotations

import asyncio

from broker.cancelling import cancel_until_done


async def test_a_loop_that_swallows_a_cancel_is_cancelled_again_until_it_ends() -> None:
    swallowed = 0

    async def loop() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if swallowed:  # the second cancel goes through
                    raise
                swallowed += 1  # as redis-py can do near a blocking read's end

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.02)
    await asyncio.wait_for(cancel_until_done([task]), 10)
    assert task.cancelled()
    assert swallowed == 1


async def test_loops_that_end_at_once_are_not_waited_for_again() -> None:
    tasks = [asyncio.create_task(asyncio.sleep(60)) for _ in range(3)]
    await asyncio.wait_for(cancel_until_done(tasks), 5)
    assert all(task.cancelled() for task in tasks)
