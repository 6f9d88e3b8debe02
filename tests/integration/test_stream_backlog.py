"""Consumer-group lag on a real Redis: what the worker's metrics report before the stream
cap trims entries a group has not read."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from broker.redis_stream_reports import read_backlog


@pytest.fixture
async def commands(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


async def test_a_group_reports_pending_lag_and_falling_behind_the_trim(commands: Redis) -> None:
    key = f"taskplane:test:backlog:{uuid.uuid4().hex[:8]}"
    try:
        ids = [await commands.xadd(key, {"n": str(n)}) for n in range(5)]
        await commands.xgroup_create(key, "slow", id="0")
        await commands.xgroup_create(key, "done", id="$")
        # "slow" gets two entries and acknowledges one of them.
        await commands.xreadgroup("slow", "c1", {key: ">"}, count=2)
        await commands.xack(key, "slow", ids[0])
        await asyncio.sleep(0.05)  # the oldest undelivered entry is now measurably old

        backlog = await read_backlog(commands, key)
        assert backlog.length == 5
        groups = {g.group: g for g in backlog.groups}
        assert groups["slow"].pending == 1
        assert groups["slow"].lag_seconds > 0
        assert groups["slow"].lag in (None, 3)  # Redis 7 counts it; 6.2 cannot
        assert not groups["slow"].behind_trim
        assert groups["done"].lag_seconds == 0
        assert groups["done"].pending == 0

        # The cap trims past what "slow" has read: its position is now older than the stream.
        await commands.xtrim(key, maxlen=1, approximate=False)
        trimmed = {g.group: g for g in (await read_backlog(commands, key)).groups}
        assert trimmed["slow"].behind_trim
        assert not trimmed["done"].behind_trim
    finally:
        await commands.delete(key)


async def test_no_stream_yet_is_an_empty_backlog(commands: Redis) -> None:
    backlog = await read_backlog(commands, f"taskplane:test:none:{uuid.uuid4().hex[:8]}")
    assert (backlog.length, backlog.groups) == (0, [])
