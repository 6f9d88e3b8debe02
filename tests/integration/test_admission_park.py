"""Parking on a real Postgres (store/admission_park.py): a task is parked only when its
key is full, at its place in the one line the claims use, with what starting it takes;
a repeat parks nothing; racing parks and claims never give more than the limit; a
parked ticket is admitted by the same dispatch, and its own claim then finds it admitted
(docs/flow-control.md#parked-tasks)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode

from activities.admission import AdmissionActivities, Waker
from activities.recorder import EventRecorder
from devstack.ports import free_port
from schemas.admission import AdmissionRequest
from schemas.admission_claim import admission_claim
from schemas.workflow import TaskWorkflowInput, workflow_id_for
from store.admission import AdmissionStore
from store.admission_park import ParkedStart, park, parked_starts
from store.chapters import stale_open_tasks
from temporal.tasks import TaskClient
from tests.integration.test_admission_store import ask, held, line_of, outcome
from tests.polling import until
from worker.admission_keeper import AdmissionKeeper
from worker.temporal_worker import build_worker


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
    assert sum((await line_of(pool, key)).values()) == 20 - 3


async def test_racing_parks_each_take_their_own_place(pool: AsyncConnectionPool) -> None:
    """Each park counts the line once the key's row lock is its own (migration 0023): no
    two share a position, whatever the interleaving."""
    store, key = AdmissionStore(pool, {}), f"park-places-{uuid.uuid4().hex[:8]}"
    assert outcome(await store.acquire(ask(key, limit=1))) == "admitted"
    waiting = [ask(key, limit=1) for _ in range(20)]
    positions = await asyncio.gather(*(park(pool, r, start_of(r)) for r in waiting))
    assert sorted(p or 0 for p in positions) == list(range(1, 21))
    assert await line_of(pool, key) == {3: 20}


async def test_a_wake_up_starts_a_parked_task_the_api_never_started(
    temporal_address: str, recorder: EventRecorder, pool: AsyncConnectionPool
) -> None:
    """The API died between parking a task and starting its workflow: the wake-up
    (Signal-With-Start) starts it, and it records its line; a parked task an operator
    terminated is never started again (its slot goes to the next)."""
    client = await Client.connect(temporal_address, data_converter=pydantic_data_converter)
    queue = f"park-{uuid.uuid4().hex[:8]}"
    starter = TaskClient(client, task_queue=queue, rpc_timeout=timedelta(seconds=10))
    store = AdmissionStore(pool, {})
    waker = Waker(client, store, starter)
    admission = AdmissionActivities(store, waker)
    key = f"park-wake-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, recorder, task_queue=queue, admission=admission):
        holder = claim_of(task_input(key))
        assert outcome(await store.acquire(holder)) == "admitted"
        terminated, orphan = (task_input(key) for _ in range(2))
        for request in (terminated, orphan):
            start = ParkedStart(request.model_dump(mode="json"), "h", "n")
            assert await park(pool, claim_of(request), start)
        gone = await client.start_workflow(
            "TaskWorkflow",
            terminated,
            id=workflow_id_for(terminated.task_id),
            task_queue=queue,
            start_delay=timedelta(days=1),
        )
        await gone.terminate("operator")
        await waker.tell(await store.release(holder.task_id))  # `orphan` was never started
        handle = client.get_workflow_handle(workflow_id_for(orphan.task_id))
        await handle.result()
        history = [e.event_type async for e in gone.fetch_history_events()]
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED not in history  # never ran
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT event_type FROM events WHERE task_id = %s ORDER BY seq", (orphan.task_id,)
        )
        recorded = [str(r[0]) for r in await cursor.fetchall()]
    assert recorded[:3] == ["task.created.v1", "task.queued.v1", "task.admitted.v1"]
    assert recorded[-1] == "task.completed.v1"
    assert await held(pool, key) == 0


async def test_a_wake_up_lost_to_a_temporal_away_is_sent_again_by_the_keeper(
    temporal_address: str, recorder: EventRecorder, pool: AsyncConnectionPool
) -> None:
    """A task parked in the store has no run; its admission's wake-up finds Temporal
    away (a client of a port nothing serves): the slot stays the task's, unconfirmed,
    and the keeper's re-sent wake-up starts the run, which records its line."""
    client = await Client.connect(temporal_address, data_converter=pydantic_data_converter)
    # Nothing serves this port: the lazy client's first call fails to connect (a
    # RuntimeError; a connected client during an outage raises RPCError UNAVAILABLE).
    # The Waker lets both through alike: it handles only NOT_FOUND (a closed run).
    away_at = f"127.0.0.1:{free_port()}"
    away = await Client.connect(away_at, lazy=True, data_converter=pydantic_data_converter)
    queue = f"park-{uuid.uuid4().hex[:8]}"
    store = AdmissionStore(pool, {})
    waker = Waker(client, store, TaskClient(client, task_queue=queue, rpc_timeout=timedelta(5)))
    lost = Waker(away, store, TaskClient(away, task_queue=queue, rpc_timeout=timedelta(2)))
    keeper = AdmissionKeeper(client, store, waker, wake_after=0.1, check_after=0)
    key = f"park-away-{uuid.uuid4().hex[:8]}"
    async with build_worker(
        client, recorder, task_queue=queue, admission=AdmissionActivities(store, waker)
    ):
        holder = claim_of(task_input(key))
        assert outcome(await store.acquire(holder)) == "admitted"
        parked = task_input(key)
        start = ParkedStart(parked.model_dump(mode="json"), "h", "n")
        assert await park(pool, claim_of(parked), start)
        with pytest.raises((RPCError, RuntimeError)):
            await lost.tell(await store.release(holder.task_id))
        assert await held(pool, key) == 1  # the parked task's slot, its run not started
        handle = client.get_workflow_handle(workflow_id_for(parked.task_id))
        with pytest.raises(RPCError) as missing:
            await handle.describe()
        assert missing.value.status == RPCStatusCode.NOT_FOUND

        async def rewoken() -> bool:  # its run exists (the keeper sees the whole store)
            await keeper.round()
            try:
                await handle.describe()
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    return False
                raise
            return True

        await until(rewoken, within=30, what="the keeper to send the wake-up again")
        await handle.result()
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT event_type FROM events WHERE task_id = %s ORDER BY seq", (parked.task_id,)
        )
        recorded = [str(r[0]) for r in await cursor.fetchall()]
    assert recorded[:3] == ["task.created.v1", "task.queued.v1", "task.admitted.v1"]
    assert recorded[-1] == "task.completed.v1"
    assert await held(pool, key) == 0


async def test_a_parked_start_that_does_not_validate_passes_its_slot_on(
    temporal_address: str, pool: AsyncConnectionPool
) -> None:
    """A stored start no API writes (no `task_type`: a bench once parked such rows) is
    never started: the wake-up does not raise (it stopped every worker's reconciler, in
    turn), the ticket's slot goes to the next in line, whose run is started."""
    client = await Client.connect(temporal_address, data_converter=pydantic_data_converter)
    queue = f"park-{uuid.uuid4().hex[:8]}"  # no worker: a started run waits, untouched
    store = AdmissionStore(pool, {})
    waker = Waker(client, store, TaskClient(client, task_queue=queue, rpc_timeout=timedelta(5)))
    key = f"park-bad-{uuid.uuid4().hex[:8]}"
    holder = claim_of(task_input(key))
    assert outcome(await store.acquire(holder)) == "admitted"
    unreadable, good = task_input(key), task_input(key)
    body = {"task_id": unreadable.task_id, "input": {"steps": 1}}
    assert await park(pool, claim_of(unreadable), ParkedStart(body, "h", "n")) == 1
    start = ParkedStart(good.model_dump(mode="json"), "h", "n")
    assert await park(pool, claim_of(good), start) == 2
    await waker.tell(await store.release(holder.task_id))
    assert (waker.unreadable, waker.woken) == (1, 1)
    handle = client.get_workflow_handle(workflow_id_for(good.task_id))
    assert (await handle.describe()).run_id  # started by its wake-up
    assert await parked_starts(pool, [unreadable.task_id]) == {}  # its ticket is gone
    assert await held(pool, key) == 1  # the good one's
    await handle.terminate("test over")
    await store.release(good.task_id)


def task_input(key: str) -> TaskWorkflowInput:
    return TaskWorkflowInput(
        task_id=str(uuid.uuid4()),
        task_type="demo.pipeline",
        input={"steps": 1, "step_seconds": 0},
        owner="acme",
        concurrency_key=key,
        concurrency_limit=1,
    )


def claim_of(request: TaskWorkflowInput) -> AdmissionRequest:
    """The claim the task's run makes (its type's slots, not the store tests' type)."""
    claim = admission_claim(request)
    assert claim is not None
    return claim


async def test_the_reconcilers_sweep_leaves_parked_tasks_to_admission(
    pool: AsyncConnectionPool,
) -> None:
    store, key = AdmissionStore(pool, {}), f"park-sweep-{uuid.uuid4().hex[:8]}"
    holder = ask(key, limit=1)
    assert outcome(await store.acquire(holder)) == "admitted"
    parked = ask(key, limit=1)
    assert await park(pool, parked, start_of(parked)) == 1

    async def first_open_from_parked() -> list[str]:
        # The page starts just before the parked task's id: it is first when it is in.
        page = await stale_open_tasks(pool, stale_seconds=0, limit=1, after=parked.task_id[:-1])
        return [chapter.task_id for chapter in page]

    assert parked.task_id not in await first_open_from_parked()  # no run: the keeper's
    assert (await store.release(holder.task_id)).granted == [parked.task_id]
    assert parked.task_id not in await first_open_from_parked()  # admitted, not yet woken
    async with pool.connection() as conn:  # what the Waker marks once its signal landed
        await conn.execute(
            "UPDATE admission_tickets SET woken = true WHERE task_id = %s", (parked.task_id,)
        )
    assert await first_open_from_parked() == [parked.task_id]  # a run now: the sweep's
