"""A stream's store reads wait out a store that does not answer, up to its deadline."""

from __future__ import annotations

import asyncio

import pytest
from psycopg_pool import PoolTimeout

from api.store_retry import STORE_RETRY_SECONDS, read_patiently


class FlakyRead:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise PoolTimeout("couldn't get a connection after 5.00 sec")
        return "snapshot"


async def test_a_read_that_fails_a_few_times_is_read_again_with_growing_pauses() -> None:
    read = FlakyRead(failures=3)
    pauses: list[float] = []
    retried: list[Exception] = []

    async def pause(seconds: float) -> None:
        pauses.append(seconds)

    now = asyncio.get_running_loop().time()
    result = await read_patiently(
        read, deadline=now + 3600, pause=pause, on_retry=lambda e: retried.append(e)
    )
    assert result == "snapshot"
    assert read.calls == 4
    assert len(retried) == 3
    first, most = STORE_RETRY_SECONDS
    assert pauses == [first, first * 2, first * 4]
    assert all(p <= most for p in pauses)


async def test_past_the_deadline_the_error_reaches_the_caller() -> None:
    read = FlakyRead(failures=100)

    async def pause(seconds: float) -> None:
        await asyncio.sleep(0)

    now = asyncio.get_running_loop().time()
    with pytest.raises(PoolTimeout):
        await read_patiently(read, deadline=now + 0.1, pause=pause, on_retry=lambda e: None)
    assert read.calls == 1  # the first pause would already end past the deadline


async def test_other_errors_are_not_waited_out() -> None:
    calls = 0

    async def broken() -> str:
        nonlocal calls
        calls += 1
        raise ValueError("a bug, not an unavailable store")

    now = asyncio.get_running_loop().time()
    with pytest.raises(ValueError, match="a bug"):
        await read_patiently(
            broken, deadline=now + 3600, pause=asyncio.sleep, on_retry=lambda e: None
        )
    assert calls == 1
