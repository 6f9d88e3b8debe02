"""Webhook enqueueing and sending in-process, on a real Postgres and a real HTTP receiver.

Events are recorded with `EventStore.append` into a fresh database, as the recorder
records them: the recording statement makes the delivery rows (webhooks/enqueue.py).
One or several `WebhookDispatcher`s send to a local receiver that verifies
signatures with the `standardwebhooks` package.
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

from schemas import EventEnvelope
from store import EventStore, open_pool
from store.listen import Listener
from store.migrate import migration_files
from telemetry.metrics import Metrics
from tests.invariants import Event, Observer, check_delivery, load_history
from tests.own_database import own_database, own_database_sync
from tests.polling import until
from tests.webhooks_support import (
    Receiver,
    always,
    running_receiver,
    verified_payloads,
)
from webhooks.api import generate_secret
from webhooks.dispatcher import WebhookDispatcher
from webhooks.enqueue import NOTIFY_CHANNEL
from webhooks.metrics import WebhookStats, register_webhook_metrics
from webhooks.outbound import pinned
from webhooks.policy import DeliveryPolicy
from webhooks.store import DeliveryState, WebhookStore

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


def new_task() -> str:
    return str(uuid.uuid4())


def envelopes_of(task_id: str, kinds: list[str]) -> list[EventEnvelope]:
    return [
        EventEnvelope(
            id=str(uuid.uuid4()),
            type=kind,
            subject=task_id,
            time=datetime.now(UTC),
            data={"task_type": "test"} if kind == "task.created.v1" else {},
        )
        for kind in kinds
    ]


async def record(pool: AsyncConnectionPool, envelopes: list[EventEnvelope]) -> list[int]:
    """Record each event as the recorder does (`EventStore.append`); their sequences."""
    store = EventStore(pool)
    return [(await store.append(envelope)).sequence for envelope in envelopes]


async def record_task(pool: AsyncConnectionPool, task_id: str, count: int) -> list[int]:
    """`count` events of the task, created … completed."""
    return await record(pool, envelopes_of(task_id, event_types(count)))


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


async def test_recording_makes_one_delivery_per_wanted_event_and_wakes_the_senders(
    db: AsyncConnectionPool, webhook_db: str
) -> None:
    task_id = new_task()
    await subscribe(db, task_id, "http://127.0.0.1:9/unused", types=["task.step.started.v1"])
    heard: list[str | None] = []
    listener = Listener(webhook_db, NOTIFY_CHANNEL)
    listening = asyncio.create_task(listener.run(heard.append))
    try:

        async def heard_all(count: int) -> bool:
            return len(heard) == count

        await until(lambda: heard_all(1), within=10)  # None: listening
        envelopes = envelopes_of(task_id, event_types(6))
        assert await record(db, envelopes[:2]) == [1, 2]  # created, started: 1 delivery
        await until(lambda: heard_all(2), within=10)  # woken at its commit
        assert await record(db, envelopes) == [1, 2, 3, 4, 5, 6]  # 2 repeats: no new rows
        await until(lambda: heard_all(3), within=10)
        await record(db, envelopes_of(new_task(), event_types(3)))  # no webhook: no NOTIFY
        # NOTIFYs arrive in commit order: once this one is heard, any the task without
        # a webhook had sent would have been heard before it.
        async with db.connection() as conn:
            await conn.execute("SELECT pg_notify(%s, 'end')", (NOTIFY_CHANNEL,))
        await until(lambda: heard_all(4), within=10)
        assert heard == [None, "", "", "end"]
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
    deliveries = await WebhookStore(db).deliveries(task_id)
    assert [(d.sequence, d.event_type) for d in deliveries] == [
        (2, "task.step.started.v1"),
        (5, "task.step.started.v1"),
    ]
    assert all(d.status == "pending" and d.attempts == 0 for d in deliveries)
    assert [d.event_id for d in deliveries] == [envelopes[1].id, envelopes[4].id]


async def test_a_task_without_a_webhook_gets_no_deliveries(db: AsyncConnectionPool) -> None:
    task_id = new_task()
    await record_task(db, task_id, 3)
    assert await WebhookStore(db).deliveries(task_id) == []


async def test_the_migration_gives_events_the_old_handler_had_not_reached_their_deliveries(
    db: AsyncConnectionPool,
) -> None:
    """Before 0007 the `webhooks` handler made deliveries; the switch must lose none."""
    (backfill,) = [sql for version, sql in migration_files() if version.startswith("0007")]
    task_id, filtered_id, plain_id = new_task(), new_task(), new_task()
    await subscribe(db, task_id, "http://127.0.0.1:9/unused")
    await subscribe(db, filtered_id, "http://127.0.0.1:9/unused", types=["task.completed.v1"])
    for task in (task_id, filtered_id, plain_id):
        await record_task(db, task, 4)
    async with db.connection() as conn:  # as a database the old worker left behind:
        await conn.execute(
            "DELETE FROM webhook_deliveries WHERE task_id = ANY(%s) AND seq > 1",
            ([task_id, filtered_id],),
        )
        await conn.execute(
            "UPDATE webhook_endpoints SET enqueued_through = 1 WHERE task_id = ANY(%s)",
            ([task_id, filtered_id],),
        )
        await conn.execute(backfill.encode())
        await conn.execute(backfill.encode())  # rows that exist are kept, not doubled
    store = WebhookStore(db)
    assert [d.sequence for d in await store.deliveries(task_id)] == [1, 2, 3, 4]
    assert [d.sequence for d in await store.deliveries(filtered_id)] == [4]
    assert await store.deliveries(plain_id) == []


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
        task_id = new_task()
        path = f"/concurrent/{n}"
        secret = await subscribe(db, task_id, receiver.at(path, flaky))
        tasks.append((task_id, path, secret))
    async with dispatching(db, webhook_db, count=3):
        await asyncio.gather(*(record_task(db, task_id, 10) for task_id, *_ in tasks))
        states = {task_id: await settled(db, task_id, 10) for task_id, *_ in tasks}
    history = await load_history(db, [t[0] for t in tasks])
    observers = []
    for task_id, path, secret in tasks:
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

    task_id = new_task()
    await subscribe(db, task_id, receiver.at("/never", first_fails))
    async with dispatching(db, webhook_db, replace(POLICY, max_attempts=3)):
        await record_task(db, task_id, 3)
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
    task_id = new_task()
    await subscribe(db, task_id, receiver.at("/gone", always(410)))
    envelopes = envelopes_of(task_id, event_types(3))
    await record(db, envelopes[:2])
    async with dispatching(db, webhook_db):
        states = await settled(db, task_id, 2)
    await record(db, envelopes[2:])  # after the endpoint was disabled: no delivery
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
    task_id = new_task()
    url = receiver.at("/rebound").replace("127.0.0.1", "localhost")
    secret = await subscribe(db, task_id, url, types=["task.created.v1"])
    store = WebhookStore(db)
    async with dispatching(db, webhook_db, replace(POLICY, allow_private_networks=False)):
        await record_task(db, task_id, 2)

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
    (first, _) = await EventStore(db).history(task_id)
    assert payload == json.loads(first.envelope_json)  # the stored envelope, as served


async def test_a_lease_keeps_other_senders_off_until_it_runs_out(
    db: AsyncConnectionPool, webhook_db: str, receiver: Receiver
) -> None:
    """A worker that claimed a delivery and died: another sends it once the lease ends."""
    task_id = new_task()
    secret = await subscribe(db, task_id, receiver.at("/leased"), types=["task.created.v1"])
    await record_task(db, task_id, 2)
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


@pytest.fixture
async def own_pool(database_url: str) -> AsyncIterator[tuple[AsyncConnectionPool, str]]:
    """A database of the test's own: the backlog figures count every delivery in it."""
    async with own_database(database_url, "webhook_figures") as url:
        pool = await open_pool(url, min_size=1, max_size=4)
        yield pool, url
        await pool.close()


async def test_a_dispatcher_s_figures_and_the_metrics_that_read_them(
    own_pool: tuple[AsyncConnectionPool, str], receiver: Receiver
) -> None:
    """Its own figures (no globals), the oldest undelivered webhook's age among them."""
    pool, url = own_pool
    down = True

    def switchable(_attempt: int, _payload: dict[str, Any]) -> tuple[int, float]:
        return (503 if down else 200), 0.0

    metrics = Metrics()
    dispatcher = WebhookDispatcher(
        WebhookStore(pool), POLICY, listen_conninfo=url, stats_refresh_seconds=0.05
    )
    idle = WebhookDispatcher(WebhookStore(pool), POLICY)  # another one: its own figures
    register_webhook_metrics(metrics, dispatcher)
    task_id = new_task()
    await subscribe(pool, task_id, receiver.at("/figures", switchable))
    sending = asyncio.create_task(dispatcher.run())
    try:
        await record_task(pool, task_id, 3)

        async def backlog_seen() -> bool:
            figures = dispatcher.stats()
            return figures.pending == 3 and figures.oldest_pending_seconds > 0.3

        await until(backlog_seen, within=10)
        assert dispatcher.stats().attempts_failed >= 1
        assert dispatcher.stats().listening
        down = False
        await settled(pool, task_id, 3)

        async def backlog_gone() -> bool:
            return dispatcher.stats().pending == 0

        await until(backlog_gone, within=10)
    finally:
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)
    figures = dispatcher.stats()
    assert (figures.sent, figures.failed, figures.latency_count) == (3, 0, 3)
    assert figures.oldest_pending_seconds == 0
    assert idle.stats() == WebhookStats()
    assert metrics.value("taskplane_webhook_deliveries_sent_total") == 3
    assert metrics.value("taskplane_webhook_attempts_failed_total") == figures.attempts_failed
    assert metrics.value("taskplane_webhook_deliveries_failed_total") == 0
    assert metrics.value("taskplane_webhook_deliveries_pending") == 0
    assert metrics.value("taskplane_webhook_oldest_pending_seconds") == 0
    assert metrics.value("taskplane_webhook_delivery_latency_seconds_count") == 3
