"""The GCRA script on a real Redis: bursts, refusals that take nothing, deferral, keys."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from broker.rate_script import GcraRule, GcraScript


@pytest.fixture
async def gcra(redis_url: str) -> AsyncIterator[GcraScript]:
    redis = Redis.from_url(redis_url)
    yield GcraScript(redis)
    await redis.aclose()


def _rule(name: str, per_second: float, burst: int) -> GcraRule:
    # A slow rate (one start per 100 s at 0.01/s) keeps the test free of timing.
    return GcraRule(f"test:rate:{{{name}}}", 1000.0 / per_second, burst)


async def test_burst_then_refusal_with_the_wait(gcra: GcraScript) -> None:
    rule = _rule(uuid.uuid4().hex, 0.01, 3)
    decisions = [await gcra.take([rule]) for _ in range(3)]
    assert [d.admitted for d in decisions] == [True, True, True]
    assert [d.remaining for d in decisions] == [2, 1, 0]
    refused = await gcra.take([rule])
    assert not refused.admitted
    # The next token comes one interval (100 s) after the first admission.
    assert 90_000 < refused.delay_ms <= 100_000
    assert refused.remaining == 0


async def test_a_refusal_takes_nothing_from_the_other_rules(gcra: GcraScript) -> None:
    tight, loose = _rule(uuid.uuid4().hex, 0.01, 1), _rule(uuid.uuid4().hex, 0.01, 2)
    assert (await gcra.take([tight, loose])).admitted
    refused = await gcra.take([tight, loose])
    assert not refused.admitted
    assert refused.rule == 0
    # `loose` kept its second token: the refused call wrote nothing.
    admitted = await gcra.take([loose])
    assert admitted.admitted
    assert admitted.remaining == 0


async def test_keys_are_separate(gcra: GcraScript) -> None:
    one, two = _rule(uuid.uuid4().hex, 0.01, 1), _rule(uuid.uuid4().hex, 0.01, 1)
    assert (await gcra.take([one])).admitted
    assert not (await gcra.take([one])).admitted
    assert (await gcra.take([two])).admitted


async def test_defer_books_starts_one_interval_apart(gcra: GcraScript) -> None:
    rule = _rule(uuid.uuid4().hex, 0.01, 1)
    first = await gcra.take([rule], mode="defer", max_delay_ms=1_000_000)
    second = await gcra.take([rule], mode="defer", max_delay_ms=1_000_000)
    third = await gcra.take([rule], mode="defer", max_delay_ms=1_000_000)
    assert first.admitted
    assert first.delay_ms == 0
    assert second.admitted
    assert third.admitted
    assert 90_000 < second.delay_ms <= 100_000
    assert 190_000 < third.delay_ms <= 200_000
    # Further out than the most a start may wait: refused, and nothing booked.
    late = await gcra.take([rule], mode="defer", max_delay_ms=250_000)
    assert not late.admitted
    assert late.delay_ms > 250_000
    assert (await gcra.take([rule], mode="defer", max_delay_ms=1_000_000)).delay_ms < 310_000
