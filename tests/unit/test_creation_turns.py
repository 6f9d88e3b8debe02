"""One tenant's creations wait for their turn; another tenant's go straight through; parks
of one key go one at a time."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import generate_latest

from api.creation_turns import CreationTurns, register_turn_metrics
from telemetry.metrics import Metrics


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


async def test_parks_of_one_key_go_one_at_a_time_in_arrival_order() -> None:
    turns = CreationTurns(8)
    release = asyncio.Event()
    parked: list[str] = []

    async def park(task_type: str, key: str, name: str) -> None:
        async with turns.park_turn(task_type, key):
            parked.append(name)
            if key == "full":
                await release.wait()

    waiting = [asyncio.create_task(park("demo", "full", f"p{i}")) for i in range(3)]
    await asyncio.sleep(0)
    assert parked == ["p0"]
    assert turns.parks_waiting("demo", "full") == 3
    assert turns.parks_in_turn() == 3
    # Another key, and the same key of another type, do not wait behind it.
    await park("demo", "free", "other key")
    await park("other.type", "full-elsewhere", "other type")
    assert parked == ["p0", "other key", "other type"]
    release.set()
    await asyncio.gather(*waiting)
    assert parked == ["p0", "other key", "other type", "p1", "p2"]
    assert turns.parks_waiting("demo", "full") == 0
    assert turns.parks_in_turn() == 0


async def test_a_failed_park_gives_its_key_the_turn_back() -> None:
    turns = CreationTurns(0)  # no tenant turns: the key's turn still holds
    with pytest.raises(RuntimeError):
        async with turns.park_turn("demo", "k"):
            raise RuntimeError("Postgres went away")
    async with turns.park_turn("demo", "k"):
        assert turns.parks_waiting("demo", "k") == 1
    assert turns.creations_in_turn() == 0


async def test_the_turns_gauges_read_what_is_in_turn() -> None:
    metrics = Metrics()
    turns = CreationTurns(2)
    register_turn_metrics(metrics, turns)
    release = asyncio.Event()

    async def create() -> None:
        async with turns.turn("noisy"), turns.park_turn("demo", "noisy"):
            await release.wait()

    tasks = [asyncio.create_task(create()) for _ in range(3)]
    await asyncio.sleep(0)
    text = generate_latest(metrics.registry).decode()
    assert "taskplane_task_creations_in_turn 3.0" in text
    assert "taskplane_task_parks_in_turn 2.0" in text  # two past their tenant's turn
    release.set()
    await asyncio.gather(*tasks)
    text = generate_latest(metrics.registry).decode()
    assert "taskplane_task_creations_in_turn 0.0" in text
    assert "taskplane_task_parks_in_turn 0.0" in text
