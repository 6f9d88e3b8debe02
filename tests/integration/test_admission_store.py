"""Admission slots on a real Postgres (store/admission.py): the claim is atomic under a
race, the line is priority then arrival, tenants share a key by weighted round robin,
and the strategies decide as documented (docs/flow-control.md)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import timedelta

from psycopg_pool import AsyncConnectionPool

from schemas.admission import AdmissionRequest, Strategy
from store.admission import Admission, AdmissionStore
from store.admission_sweep import STUCK, UNWOKEN, running_per_key

TYPE = "test.admission"


def ask(
    key: str,
    *,
    limit: int = 2,
    tenant: str = "acme",
    priority: int = 3,
    strategy: Strategy = "queue",
    task_id: str | None = None,
) -> AdmissionRequest:
    return AdmissionRequest(
        task_id=task_id or str(uuid.uuid4()),
        task_type=TYPE,
        concurrency_key=key,
        tenant=tenant,
        limit=limit,
        strategy=strategy,
        priority=priority,
    )


def outcome(admission: Admission) -> str:
    assert admission.decision is not None
    return admission.decision.outcome


async def held(pool: AsyncConnectionPool, key: str) -> int:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM admission_tickets WHERE concurrency_key = %s"
            " AND state = 'running'",
            (key,),
        )
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def line_of(pool: AsyncConnectionPool, key: str) -> dict[int, int]:
    """The key's waiting tickets by priority, from its counters (migration 0023), after
    checking them against the tickets themselves."""
    async with pool.connection() as conn:
        counted = await conn.execute(
            "SELECT priority, queued FROM admission_line WHERE concurrency_key = %s AND queued > 0",
            (key,),
        )
        line = {int(p): int(n) for p, n in await counted.fetchall()}
        rows = await conn.execute(
            "SELECT priority, count(*) FROM admission_tickets WHERE concurrency_key = %s"
            " AND state = 'queued' GROUP BY priority",
            (key,),
        )
        assert line == {int(p): int(n) for p, n in await rows.fetchall()}
    return line


async def test_racing_claims_never_take_more_than_the_limit(pool: AsyncConnectionPool) -> None:
    store, key = AdmissionStore(pool, {}), f"race-{uuid.uuid4().hex[:8]}"
    outcomes = await asyncio.gather(*(store.acquire(ask(key, limit=3)) for _ in range(40)))
    decisions = Counter(o.decision.outcome for o in outcomes if o.decision)
    assert decisions == {"admitted": 3, "queued": 37}
    assert await held(pool, key) == 3
    counts = await running_per_key(pool, TYPE, [key])
    assert (counts[key].running, counts[key].limit) == (3, 3)
    positions = sorted(o.decision.position or 0 for o in outcomes if o.decision)
    assert positions[-37:] == list(range(1, 38))  # every queued task has its own place
    assert await line_of(pool, key) == {3: 37}


async def test_a_repeated_claim_answers_the_same(pool: AsyncConnectionPool) -> None:
    store, key = AdmissionStore(pool, {}), f"repeat-{uuid.uuid4().hex[:8]}"
    first, second = ask(key, limit=1), ask(key, limit=1)
    assert outcome(await store.acquire(first)) == "admitted"
    assert outcome(await store.acquire(first)) == "admitted"
    again = await store.acquire(second)
    assert outcome(again) == "queued"
    assert (await store.acquire(second)).decision == again.decision
    assert await held(pool, key) == 1


async def test_a_granted_task_claims_again_without_waiting_for_its_key(
    pool: AsyncConnectionPool,
) -> None:
    """The run a release woke claims a slot it already holds: answered from its ticket,
    while the key's row is locked (as a flood's parks lock it in turn)."""
    store, key = AdmissionStore(pool, {}), f"woken-{uuid.uuid4().hex[:8]}"
    holder, waiter = ask(key, limit=1), ask(key, limit=1)
    assert outcome(await store.acquire(holder)) == "admitted"
    assert outcome(await store.acquire(waiter)) == "queued"
    released = await store.release(holder.task_id)
    assert released.granted == [waiter.task_id]  # its ticket holds the slot, not woken yet
    async with pool.connection() as locker, locker.transaction():
        await locker.execute(
            "SELECT 1 FROM admission_keys WHERE task_type = %s AND concurrency_key = %s FOR UPDATE",
            (TYPE, key),
        )
        # Waiting for the lock would never end while this transaction holds it.
        woken = await asyncio.wait_for(store.acquire(waiter), timeout=10)
    assert outcome(woken) == "admitted"
    assert woken.granted == []
    assert woken.to_cancel == []
    assert woken.decision is not None
    assert woken.decision.running == 1
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT woken FROM admission_tickets WHERE task_id = %s", (waiter.task_id,)
        )
        assert await cursor.fetchone() == (True,)  # the keeper will not wake it again
    assert await held(pool, key) == 1
    counts = await running_per_key(pool, TYPE, [key])
    assert counts[key].running == 1


async def test_releases_admit_by_priority_then_arrival(pool: AsyncConnectionPool) -> None:
    store, key = AdmissionStore(pool, {}), f"fifo-{uuid.uuid4().hex[:8]}"
    holder = ask(key, limit=1)
    await store.acquire(holder)
    waiters = [ask(key, limit=1, priority=p) for p in (3, 3, 5, 1, 3)]
    for waiter in waiters:
        await store.acquire(waiter)
    assert await line_of(pool, key) == {1: 1, 3: 3, 5: 1}
    order, current = [], holder.task_id
    for _ in waiters:
        granted = (await store.release(current)).granted
        assert len(granted) == 1
        order.append(granted[0])
        current = granted[0]
    by_id = {w.task_id: i for i, w in enumerate(waiters)}
    assert [by_id[t] for t in order] == [3, 0, 1, 4, 2]  # priority 1, the 3s in order, 5
    assert await held(pool, key) == 1
    assert (await store.release(current)).granted == []
    assert await held(pool, key) == 0
    assert await line_of(pool, key) == {}


async def test_tenants_sharing_a_key_get_slots_by_weight(pool: AsyncConnectionPool) -> None:
    store = AdmissionStore(pool, {"acme": 3, "beta": 1})
    key = f"shared-{uuid.uuid4().hex[:8]}"
    holder = ask(key, limit=1, tenant="acme")
    await store.acquire(holder)
    # The noisy tenant queues first and far more; the quiet one still gets its share.
    tenants = {}
    for tenant, n in (("acme", 40), ("beta", 40)):
        for _ in range(n):
            request = ask(key, limit=1, tenant=tenant)
            tenants[request.task_id] = tenant
            await store.acquire(request)
    served, current = [], holder.task_id
    for _ in range(40):
        granted = (await store.release(current)).granted
        served.append(tenants[granted[0]])
        current = granted[0]
    assert Counter(served) == {"acme": 30, "beta": 10}  # 3:1


async def test_cancel_newest_refuses_a_task_over_the_limit(pool: AsyncConnectionPool) -> None:
    store, key = AdmissionStore(pool, {}), f"newest-{uuid.uuid4().hex[:8]}"
    first = await store.acquire(ask(key, limit=1, strategy="cancel_newest"))
    refused = await store.acquire(ask(key, limit=1, strategy="cancel_newest"))
    assert outcome(first) == "admitted"
    assert outcome(refused) == "cancelled"
    assert refused.decision is not None
    assert "cancel_newest" in (refused.decision.reason or "")
    assert await held(pool, key) == 1


async def test_cancel_in_progress_stops_the_oldest_and_older_waiters(
    pool: AsyncConnectionPool,
) -> None:
    store, key = AdmissionStore(pool, {}), f"progress-{uuid.uuid4().hex[:8]}"
    running = [ask(key, limit=2, strategy="cancel_in_progress") for _ in range(2)]
    for request in running:
        await store.acquire(request)
    newest = ask(key, limit=2, strategy="cancel_in_progress")
    first = await store.acquire(newest)
    assert outcome(first) == "queued"
    assert [t for t, _ in first.to_cancel] == [running[0].task_id]  # the oldest only
    newer = ask(key, limit=2, strategy="cancel_in_progress")
    second = await store.acquire(newer)
    # The waiter it supersedes; the holder already asked to stop makes room for it, so
    # the newest `limit` tasks (running[1] and it) are the ones left.
    assert [t for t, _ in second.to_cancel] == [newest.task_id]
    assert await line_of(pool, key) == {3: 1}  # the dropped waiter left the line
    assert await held(pool, key) == 2  # nobody runs over the limit meanwhile
    granted = (await store.release(running[0].task_id)).granted
    assert granted == [newer.task_id]


async def test_the_keeper_finds_stuck_keys_and_unwoken_grants(pool: AsyncConnectionPool) -> None:
    """Its questions, asked inside a transaction that is rolled back: the keepers of the
    session's running workers never see (and never heal) this test's broken key."""
    store, key = AdmissionStore(pool, {}), f"stuck-{uuid.uuid4().hex[:8]}"
    holder, waiter = ask(key, limit=1), ask(key, limit=1)
    await store.acquire(holder)
    await store.acquire(waiter)
    async with pool.connection() as conn, conn.transaction(force_rollback=True):
        # A release that died half way: the slot is free, the waiter not admitted.
        await conn.execute("DELETE FROM admission_tickets WHERE task_id = %s", (holder.task_id,))
        await conn.execute(
            "UPDATE admission_keys SET running = 0 WHERE concurrency_key = %s", (key,)
        )
        rows = await (await conn.execute(STUCK, {"limit": 100_000})).fetchall()
        assert (TYPE, key) in [(str(t), str(k)) for t, k in rows]
        # An admitted task whose wake-up never went out.
        await conn.execute(
            "UPDATE admission_tickets SET state = 'running', woken = false,"
            " admitted_at = now() - interval '1 hour' WHERE task_id = %s",
            (waiter.task_id,),
        )
        params = {"after": timedelta(seconds=60), "limit": 100_000}
        rows = await (await conn.execute(UNWOKEN, params)).fetchall()
        assert waiter.task_id in [str(r[0]) for r in rows]
    assert (await store.release(holder.task_id)).granted == [waiter.task_id]
    await store.release(waiter.task_id)
