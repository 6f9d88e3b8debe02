"""One tenant's creations wait for their turn; another tenant's go straight through."""

from __future__ import annotations

import asyncio

import pytest

from api.creation_turns import CreationTurns


async def test_a_tenant_at_its_limit_waits_and_another_does_not() -> None:
    turns = CreationTurns(2)
    release = asyncio.Event()
    entered: list[str] = []

    async def create(tenant: str, name: str) -> None:
        async with turns.turn(tenant):
            entered.append(name)
            if tenant == "noisy":
                await release.wait()

    noisy = [asyncio.create_task(create("noisy", f"n{i}")) for i in range(4)]
    await asyncio.sleep(0)
    await create("quiet", "q")  # would hang if it queued behind the noisy tenant
    assert entered == ["n0", "n1", "q"]
    assert turns.waiting("noisy") == 4
    release.set()
    await asyncio.gather(*noisy)
    assert entered == ["n0", "n1", "q", "n2", "n3"]  # the waiting ones in arrival order
    assert turns.waiting("noisy") == 0
    assert turns.waiting("quiet") == 0


async def test_an_error_or_cancel_gives_the_turn_back() -> None:
    turns = CreationTurns(1)
    with pytest.raises(RuntimeError):
        async with turns.turn("t"):
            raise RuntimeError("refused")
    holder = asyncio.Event()

    async def hold() -> None:
        async with turns.turn("t"):
            await holder.wait()

    first = asyncio.create_task(hold())
    second = asyncio.create_task(hold())
    await asyncio.sleep(0)
    second.cancel()  # cancelled while waiting for its turn
    with pytest.raises(asyncio.CancelledError):
        await second
    holder.set()
    await first
    assert turns.waiting("t") == 0
    async with turns.turn("t"):
        assert turns.waiting("t") == 1


async def test_zero_means_no_limit() -> None:
    turns = CreationTurns(0)
    async with turns.turn("t"), turns.turn("t"):
        assert turns.waiting("t") == 0
    with pytest.raises(ValueError, match="limit must be"):
        CreationTurns(-1)
