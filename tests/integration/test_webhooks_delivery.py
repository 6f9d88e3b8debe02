"""The webhook handler and sender in-process, on a real Postgres and a real HTTP receiver.

Events are written straight into a fresh database (the store's tables, as the
recorder leaves them); the handler function runs inside the processed-event
transaction as the worker runs it; one or several `WebhookDispatcher`s send to
a local receiver that verifies signatures with the `standardwebhooks` package.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from api.webhooks import generate_secret
from schemas import EventEnvelope
from store import open_pool
from store.processed import ProcessedEvents
from store.webhooks import DeliveryState, WebhookStore
from tests.invariants import Event, Observer, check_delivery, load_history
from tests.own_database import own_database_sync
from tests.polling import until
from tests.webhooks_support import (
    Receiver,
    always,
    running_receiver,
    verified_payloads,
)
from worker.webhooks import (
    HANDLER_NAME,
    DeliveryPolicy,
    WebhookDispatcher,
    enqueue_deliveries,
    pinned,
    webhook_handler,
)

pytestmark = pytest.mark.timeout(60)

POLICY = DeliveryPolicy(
    timeout_seconds=0.5,
    max_attempts=4,
    max_age_seconds=60,
    retry_base_seconds=0.05,
    retry_max_seconds=0.2,
    lease_seconds=3,
    poll_seconds=0.2,
    batch_size=8,
    allow_private_networks=True,
    disable_on_gone=True,
)


@pytest.fixture(scope="module")
def webhook_db(database_url: str) -> Iterator[str]:
    with own_database_sync(database_url, "webhooks") as url:
        yield url


@pytest.fixture(scope="module")
async def db(webhook_db: str) -> AsyncIterator[AsyncConnectionPool]:
    pool = await open_pool(webhook_db, min_size=1, max_size=8)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running_receiver() as the_receiver:
        yield the_receiver


def event_types(count: int) -> list[str]:
    middle = ["task.step.started.v1", "task.step.progress.v1", "task.step.completed.v1"]
    return ["task.created.v1", *[middle[i % 3] for i in range(count - 2)], "task.completed.v1"]


async def store_task(pool: AsyncConnectionPool, count: int) -> tuple[str, list[EventEnvelope]]:
    """A task with `count` stored events (created … completed), as the recorder stores them."""
    task_id = str(uuid.uuid4())
    envelopes = [
        EventEnvelope(
            id=str(uuid.uuid4()),
            type=kind,
            subject=task_id,
            time=datetime.now(UTC),
            data={"n": seq},
            sequence=seq,
        )
        for seq, kind in enumerate(event_types(count), start=1)
    ]
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO tasks (task_id, task_type, last_seq) VALUES (%s, 'test', %s)",
            (task_id, count),
        )
        for envelope in envelopes:
            await conn.execute(
                "INSERT INTO events (task_id, seq, event_id, event_type, recorded_at, envelope)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    task_id,
                    envelope.sequence,
                    envelope.id,
                    envelope.type,
                    envelope.time,
                    envelope.model_dump_json(),
                ),
            )
    return task_id, envelopes


async def subscribe(
    pool: AsyncConnectionPool,
    task_id: str,
    url: str,
    *,
    types: list[str] | None = None,
) -> str:
    secret = generate_secret()
    await WebhookStore(pool).subscribe(
        task_id,
        url=url,
        secret=secret,
        secret_generated=True,
        event_types=types,
        request_hash="test",
    )
    return secret


async def handle(pool: AsyncConnectionPool, envelope: EventEnvelope) -> None:
    """What the worker's HandlerRunner does with one delivered event."""
    async with ProcessedEvents(pool).first_time(HANDLER_NAME, envelope.id) as conn:
        if conn is not None:
            await enqueue_deliveries(envelope, conn)


@asynccontextmanager
async def dispatching(
    pool: AsyncConnectionPool, conninfo: str, policy: DeliveryPolicy = POLICY, *, count: int = 1
) -> AsyncIterator[None]:
    tasks = [
        asyncio.create_task(
            WebhookDispatcher(WebhookStore(pool), policy, listen_conninfo=conninfo).run()
        )
        for _ in range(count)
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results), results


async def settled(pool: AsyncConnectionPool, task_id: str, count: int) -> list[DeliveryState]:
    """Wait until the task has `count` deliveries, none pending."""
    states: list[DeliveryState] = []

    async def done() -> bool:
        nonlocal states
        states = await WebhookStore(pool).deliveries(task_id)
        return len(states) == count and all(s.status != "pending" for s in states)

    await until(done, within=20)
    return states


def observer(name: str, task_id: str, payloads: list[dict[str, Any]], **kw: Any) -> Observer:
    seen = [Event.from_envelope(p) for p in payloads]
    return Observer(name, seen, ordered=True, tasks=frozenset({task_id}), **kw)


async def test_events_handled_out_of_order_are_enqueued_in_order_once(
    db: AsyncConnectionPool,
) -> None:
    task_id, envelopes = await store_task(db, 6)
    await subscribe(db, task_id, "http://127.0.0.1:9/unused", types=["task.step.started.v1"])
    store = WebhookStore(db)
    await handle(db, envelopes[3])  # sequence 4 first: 1..4 get their rows
    assert [d.sequence for d in await store.deliveries(task_id)] == [2]
    for envelope in (envelopes[1], envelopes[3], envelopes[5], envelopes[0]):  # repeats: no-ops
        await handle(db, envelope)
    deliveries = await store.deliveries(task_id)
    assert [(d.sequence, d.event_type) for d in deliveries] == [
        (2, "task.step.started.v1"),
        (5, "task.step.started.v1"),
    ]
    assert all(d.status == "pending" and d.attempts == 0 for d in deliveries)


async def test_a_task_without_a_webhook_gets_no_deliveries(db: AsyncConnectionPool) -> None:
    task_id, envelopes = await store_task(db, 3)
    for envelope in envelopes:
        await handle(db, envelope)
    assert await WebhookStore(db).deliveries(task_id) == []


async def test_the_handler_leaves_tasks_without_a_webhook_alone_and_asks_once_per_task(
    db: AsyncConnectionPool,
) -> None:
    plain_id, plain = await store_task(db, 3)
    hooked_id, hooked = await store_task(db, 3)
    await subscribe(db, hooked_id, "http://127.0.0.1:9/unused")
    store = WebhookStore(db)
    lookups: list[str] = []
    has_subscription = store.has_subscription

    async def counted(task_id: str) -> bool:
        lookups.append(task_id)
        return await has_subscription(task_id)

    store.has_subscription = counted  # type: ignore[method-assign]
    handler = webhook_handler(store)
    concerned = [await handler.concerns(e) for e in [*plain, *hooked, *plain]]
    assert concerned == [False] * 3 + [True] * 3 + [False] * 3
    assert lookups == [plain_id, hooked_id]  # once per task, not once per event


async def test_several_senders_deliver_each_event_once_in_task_order_through_failures(
    db: AsyncConnectionPool, webhook_db: str, receiver: Receiver
) -> None:
    def flaky(attempt: int, payload: dict[str, Any]) -> tuple[int, float]:
        sequence = payload["sequence"]
        if sequence == 2 and attempt == 1:
            return 200, 1.0  # answered after the sender's 0.5 s timeout
        if sequence % 3 == 0 and attempt <= 2:
            return 500 + attempt, 0.0
        return 204, 0.0

    tasks = []
    for n in range(4):
        task_id, envelopes = await store_task(db, 10)
        path = f"/concurrent/{n}"
        secret = await subscribe(db, task_id, receiver.at(path, flaky))
        tasks.append((task_id, envelopes, path, secret))
    async with dispatching(db, webhook_db, count=3):
        for _task_id, envelopes, _, _ in tasks:  # the broker's order is no order: reversed
            for envelope in reversed(envelopes):
                await handle(db, envelope)
        states = {task_id: await settled(db, task_id, 10) for task_id, *_ in tasks}
    history = await load_history(db, [t[0] for t in tasks])
    observers = []
    for task_id, _envelopes, path, secret in tasks:
        accepted = receiver.accepted(path)
        payloads = verified_payloads(accepted, secret)
        assert [r.webhook_id for r in accepted] == [p["id"] for p in payloads]
        observers.append(observer(f"receiver {path}", task_id, payloads))
        # Never a request for a later event before the earlier one was taken in.
        taken: set[int] = set()
        for request in receiver.requests(path):
            sequence = request.payload["sequence"]
            assert taken == set(range(1, sequence)), (sequence, sorted(taken))
            if 200 <= request.status < 300:
                taken.add(sequence)
        expected_attempts = {s: 3 if s % 3 == 0 else 2 if s == 2 else 1 for s in range(1, 11)}
        assert {s.sequence: s.attempts for s in states[task_id]} == expected_attempts
        assert all(s.status == "delivered" and s.last_status_code == 204 for s in states[task_id])
    check_delivery(history, observers, tasks=[t[0] for t in tasks])


async def test_a_delivery_that_never_succeeds_fails_and_the_next_event_goes(
    db: AsyncConnectionPool, webhook_db: str, receiver: Receiver
) -> None:
    def first_fails(_attempt: int, payload: dict[str, Any]) -> tuple[int, float]:
        return (500 if payload["sequence"] == 1 else 200), 0.0

    task_id, envelopes = await store_task(db, 3)
    await subscribe(db, task_id, receiver.at("/never", first_fails))
    async with dispatching(db, webhook_db, replace(POLICY, max_attempts=3)):
        for envelope in envelopes:
            await handle(db, envelope)
        states = await settled(db, task_id, 3)
    assert [(s.status, s.attempts, s.last_status_code) for s in states] == [
        ("failed", 3, 500),
        ("delivered", 1, 200),
        ("delivered", 1, 200),
    ]
    assert states[0].last_error == "HTTP 500"
    sequences = [r.payload["sequence"] for r in receiver.requests("/never")]
    assert sequences == [1, 1, 1, 2, 3]


async def test_410_gone_disables_the_endpoint(
    db: AsyncConnectionPool, webhook_db: str, receiver: Receiver
) -> None:
    task_id, envelopes = await store_task(db, 3)
    await subscribe(db, task_id, receiver.at("/gone", always(410)))
    for envelope in envelopes[:2]:
        await handle(db, envelope)
    async with dispatching(db, webhook_db):
        states = await settled(db, task_id, 2)
    await handle(db, envelopes[2])  # after the endpoint was disabled: no delivery
    assert [(s.status, s.attempts) for s in states] == [("failed", 1), ("failed", 0)]
    assert len(await WebhookStore(db).deliveries(task_id)) == 2
    assert len(receiver.requests("/gone")) == 1
    endpoint = await WebhookStore(db).endpoint(task_id)
    assert endpoint is not None
    assert endpoint.disabled_reason == "the receiver answered 410 Gone"


async def test_a_host_that_resolves_to_loopback_at_delivery_time_is_refused(
    db: AsyncConnectionPool, webhook_db: str, receiver: Receiver
) -> None:
    """As after DNS rebinding: the URL passed its check, its name now points inside."""
    task_id, envelopes = await store_task(db, 2)
    url = receiver.at("/rebound").replace("127.0.0.1", "localhost")
    secret = await subscribe(db, task_id, url, types=["task.created.v1"])
    store = WebhookStore(db)
    async with dispatching(db, webhook_db, replace(POLICY, allow_private_networks=False)):
        for envelope in envelopes:
            await handle(db, envelope)

        async def refused() -> bool:
            states = await store.deliveries(task_id)
            return bool(states) and states[0].attempts >= 2

        await until(refused, within=10)
    (state,) = await store.deliveries(task_id)
    assert state.status == "pending"
    assert state.last_status_code is None
    assert state.last_error is not None
    assert "non-public address" in state.last_error
    assert receiver.requests("/rebound") == []
    # Allowed, the same delivery goes out, signed.
    async with dispatching(db, webhook_db):
        (state,) = await settled(db, task_id, 1)
    assert state.status == "delivered"
    (payload,) = verified_payloads(receiver.accepted("/rebound"), secret)
    assert payload == json.loads(envelopes[0].model_dump_json())


async def test_a_lease_keeps_other_senders_off_until_it_runs_out(
    db: AsyncConnectionPool, webhook_db: str, receiver: Receiver
) -> None:
    """A worker that claimed a delivery and died: another sends it once the lease ends."""
    task_id, envelopes = await store_task(db, 2)
    secret = await subscribe(db, task_id, receiver.at("/leased"), types=["task.created.v1"])
    await handle(db, envelopes[0])
    store = WebhookStore(db)
    claimed = await store.claim(limit=100, lease_seconds=1.5)  # ... and then the worker died
    (dead,) = [c for c in claimed if c.task_id == task_id]
    assert (dead.task_id, dead.attempt) == (task_id, 1)
    async with dispatching(db, webhook_db):
        await asyncio.sleep(1.0)
        assert receiver.requests("/leased") == []  # still leased to the dead worker
        (state,) = await settled(db, task_id, 1)
    assert (state.status, state.attempts) == ("delivered", 2)
    assert len(verified_payloads(receiver.requests("/leased"), secret)) == 1
    # The dead worker's late report is fenced off: it changes nothing.
    assert not await store.retry_later(dead, delay_seconds=1, status_code=500, error="late")
    assert not await store.mark_failed(dead, status_code=500, error="late")
    (state,) = await store.deliveries(task_id)
    assert (state.status, state.last_status_code, state.last_error) == ("delivered", 200, None)


async def test_a_pinned_request_reaches_the_address_with_the_original_host(
    receiver: Receiver,
) -> None:
    """What the sender does after an address check, against a real server."""
    name_url = httpx.URL(receiver.at("/pinned")).copy_with(host="hooks.invalid")
    url, headers, extensions = pinned(name_url, ipaddress.ip_address("127.0.0.1"))
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.post(
            url, json={"sequence": 1}, headers=headers, extensions=extensions
        )
    assert response.status_code == 200
    (request,) = receiver.requests("/pinned")
    assert request.headers["host"] == f"hooks.invalid:{name_url.port}"


async def test_a_plan_is_a_plan(receiver: Receiver) -> None:
    """The receiver's bookkeeping the tests above rely on (attempt numbering per id)."""

    def plan(attempt: int, _payload: dict[str, Any]) -> tuple[int, float]:
        return (500 if attempt == 1 else 200), 0.0

    async with httpx.AsyncClient() as http:
        url = receiver.at("/self-check", plan)
        body = {"sequence": 1}
        codes = [
            (await http.post(url, json=body, headers={"webhook-id": "x"})).status_code
            for _ in range(2)
        ]
    assert codes == [500, 200]
    assert [r.attempt for r in receiver.requests("/self-check")] == [1, 2]
