"""Parking on a real Postgres (store/admission_park.py): a task is parked only when its
key is full, at its place in the one line the claims use, with what starting it takes;
a repeat parks nothing; racing parks and claims never give more than the limit; a
parked ticket is admitted by the same dispatch, and its own claim then finds it admitted
(docs/flow-control.md#parked-tasks)."""

from __future__ import annotations

import asyncio
import uuid

from psycopg_pool import AsyncConnectionPool

from schemas.admission import AdmissionRequest
from store.admission import AdmissionStore
from store.admission_park import ParkedStart, park, parked_starts
from tests.integration.test_admission_store import ask, held, outcome


def start_of(request: AdmissionRequest) -> ParkedStart:
    body = {"task_id": request.task_id, "task_type": request.task_type, "input": {"n": 1}}
    return ParkedStart(input=body, request_hash="h", request_nonce="n")


async def status_of(pool: AsyncConnectionPool, task_id: str) -> str | None:
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT status FROM tasks WHERE task_id = %s", (task_id,))
        row = await cursor.fetchone()
    return None if row is None else str(row[0])


async def test_parked_only_when_full_in_the_claims_line(pool: AsyncConnectionPool) -> None:
    store, key = AdmissionStore(pool, {}), f"park-{uuid.uuid4().hex[:8]}"
    free = ask(key, limit=1)
    assert await park(pool, free, start_of(free)) is None  # a free slot: start it
    assert outcome(await store.acquire(free)) == "admitted"
    claimed = ask(key, limit=1)
    assert outcome(await store.acquire(claimed)) == "queued"  # a run's own claim waits
    parked = ask(key, limit=1)
    start = start_of(parked)
    assert await park(pool, parked, start) == 2  # behind the claimed waiter
    assert start.input["parked_position"] == 2
    assert await park(pool, parked, start_of(parked)) is None  # a repeat parks nothing
    assert await status_of(pool, parked.task_id) == "queued"
    stored = await parked_starts(pool, [parked.task_id, claimed.task_id])
    assert list(stored) == [parked.task_id]
    assert stored[parked.task_id].input["parked_position"] == 2
    # The slot frees: the waiter first, then the parked ticket, by the same dispatch.
    assert (await store.release(free.task_id)).granted == [claimed.task_id]
    assert (await store.release(claimed.task_id)).granted == [parked.task_id]
    woken = await store.acquire(parked)  # the woken run's claim
    assert outcome(woken) == "admitted"
    assert woken.granted == []
    assert await held(pool, key) == 1


async def test_racing_parks_and_claims_never_exceed_the_limit(pool: AsyncConnectionPool) -> None:
    store, key = AdmissionStore(pool, {}), f"park-race-{uuid.uuid4().hex[:8]}"
    holders = [ask(key, limit=3) for _ in range(3)]
    for request in holders:
        assert outcome(await store.acquire(request)) == "admitted"
    others = [ask(key, limit=3) for _ in range(20)]

    async def one(request: AdmissionRequest) -> None:
        if await park(pool, request, start_of(request)) is None:
            await store.acquire(request)

    await asyncio.gather(*(one(r) for r in others), store.release(holders[0].task_id))
    assert await held(pool, key) == 3
    granted: list[str] = []
    for request in holders[1:]:
        granted += (await store.release(request.task_id)).granted
    assert len(granted) == 2
    assert await held(pool, key) == 3
