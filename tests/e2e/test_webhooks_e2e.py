"""Webhooks through the real worker and API processes, to a real local receiver.

The stack runs on a database and a Redis database of its own (webhook deliveries
are claimed by any worker of a database, and this stack's settings differ from
the session stack's: private networks allowed, fast retries). A demo task's
events go: recorder (the recording statement makes each delivery row and a
NOTIFY) → the worker's dispatcher → the receiver, which keeps each request for
`standardwebhooks` to verify.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from store import open_pool
from tests.e2e.conftest import ProcessStack, running_stack
from tests.invariants import Event, Observer, check_delivery, load_history
from tests.own_database import own_database_sync
from tests.webhooks_support import Receiver, running_receiver, verified_payloads

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

TASK_INPUT = {"steps": 2, "step_seconds": 0.2, "progress_ticks": 2}
STACK_SETTINGS = {
    "webhook_allow_private_networks": "true",
    "webhook_retry_base_seconds": "0.1",
    "webhook_retry_max_seconds": "1",
    "webhook_poll_seconds": "0.2",
    "webhook_timeout_seconds": "2",
    "webhook_lease_seconds": "5",
    "webhook_max_attempts": "10",  # a retry never runs out while a test holds it
}


def own_redis_db(redis_url: str) -> str:
    return redis_url.rsplit("/", 1)[0] + "/7"


@pytest.fixture(scope="module")
def webhook_db(database_url: str) -> Iterator[str]:
    with own_database_sync(database_url, "webhooks") as url:
        yield url


@pytest.fixture(scope="module")
async def webhook_stack(
    services: Any, webhook_db: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ProcessStack]:
    redis_url = own_redis_db(services.redis_url)
    admin = Redis.from_url(redis_url, decode_responses=True)
    await admin.flushdb()
    log_dir: Path = tmp_path_factory.mktemp("e2e-webhooks")
    with running_stack(
        services, log_dir, database_url=webhook_db, redis_url=redis_url, **STACK_SETTINGS
    ) as stack:
        yield stack
    await admin.aclose()


@pytest.fixture(scope="module")
async def db(webhook_db: str) -> AsyncIterator[AsyncConnectionPool]:
    pool = await open_pool(webhook_db, min_size=1, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running_receiver() as the_receiver:
        yield the_receiver


@pytest.fixture
async def http(webhook_stack: ProcessStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=webhook_stack.base_url, timeout=30) as client:
        yield client


async def start(http: httpx.AsyncClient, webhook: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(
        "/tasks", json={"type": "demo.pipeline", "input": TASK_INPUT, "webhook": webhook}
    )
    assert response.status_code == 202, response.text
    created: dict[str, Any] = response.json()
    return created


async def finished(
    http: httpx.AsyncClient, task_id: str, *, within: float = 30
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The task's history once it ended and no delivery is pending; and its webhook state."""
    deadline = time.monotonic() + within
    while True:
        history = (await http.get(f"/tasks/{task_id}/history", params={"limit": 1000})).json()
        state = (await http.get(f"/tasks/{task_id}/webhook")).json()
        events = history["events"]
        ended = bool(events) and events[-1]["type"].startswith(
            ("task.completed", "task.failed", "task.cancelled")
        )
        if ended and all(d["status"] != "pending" for d in state["deliveries"]):
            return events, state
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.1)


async def check_receiver(
    db: AsyncConnectionPool,
    task_id: str,
    payloads: list[dict[str, Any]],
    event_types: frozenset[str] | None = None,
) -> None:
    history = await load_history(db, [task_id])
    seen = [Event.from_envelope(p) for p in payloads]
    receiver_view = Observer(
        "webhook receiver",
        seen,
        ordered=True,
        tasks=frozenset({task_id}),
        event_types=event_types,
    )
    check_delivery(history, [receiver_view], tasks=[task_id])


async def test_a_demo_task_s_events_arrive_once_each_in_order_and_signed(
    http: httpx.AsyncClient, db: AsyncConnectionPool, receiver: Receiver
) -> None:
    path = f"/all/{uuid.uuid4().hex[:6]}"
    created = await start(http, {"url": receiver.at(path)})
    secret = created["webhook"]["secret"]
    events, state = await finished(http, created["task_id"])
    assert len(events) == 10  # created, 2 x (started, 2 progress, completed), completed

    requests = receiver.requests(path)
    assert requests == receiver.accepted(path)  # nothing failed, nothing sent twice
    payloads = verified_payloads(requests, secret)
    assert payloads == events  # the stored envelopes, as history serves them
    assert [r.webhook_id for r in requests] == [e["id"] for e in events]
    assert all(r.headers["content-type"] == "application/json" for r in requests)
    await check_receiver(db, created["task_id"], payloads)

    assert "secret" not in state
    assert [d["sequence"] for d in state["deliveries"]] == list(range(1, 11))
    for delivery, event in zip(state["deliveries"], events, strict=True):
        assert delivery["event_id"] == event["id"]
        assert delivery["event_type"] == event["type"]
        assert delivery["status"] == "delivered"
        assert delivery["attempts"] == 1
        assert delivery["last_status_code"] == 200
        assert delivery["delivered_at"] is not None
        assert delivery["next_attempt_at"] is None


async def test_a_receiver_that_fails_the_first_attempts_gets_every_event_once(
    http: httpx.AsyncClient, db: AsyncConnectionPool, receiver: Receiver
) -> None:
    def flaky(attempt: int, payload: dict[str, Any]) -> tuple[int, float]:
        if attempt == 1:
            return (500 if payload["sequence"] % 2 else 503), 0.0
        if attempt == 2 and payload["sequence"] == 2:
            return 200, 2.6  # answered only after the sender's 2 s timeout
        return 200, 0.0

    path = f"/flaky/{uuid.uuid4().hex[:6]}"
    created = await start(http, {"url": receiver.at(path, flaky)})
    events, state = await finished(http, created["task_id"])

    accepted = receiver.accepted(path)
    payloads = verified_payloads(accepted, created["webhook"]["secret"])
    assert [p["id"] for p in payloads] == [e["id"] for e in events]
    await check_receiver(db, created["task_id"], payloads)
    taken: set[int] = set()
    for request in receiver.requests(path):  # in arrival order, failures included
        sequence = request.payload["sequence"]
        assert taken == set(range(1, sequence)), (sequence, sorted(taken))
        if 200 <= request.status < 300:
            taken.add(sequence)
    attempts = {d["sequence"]: d["attempts"] for d in state["deliveries"]}
    assert attempts == {s: 3 if s == 2 else 2 for s in range(1, len(events) + 1)}
    assert all(d["status"] == "delivered" for d in state["deliveries"])


async def test_only_the_chosen_event_types_are_sent(
    http: httpx.AsyncClient, db: AsyncConnectionPool, receiver: Receiver
) -> None:
    path = f"/filtered/{uuid.uuid4().hex[:6]}"
    secret = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA=="
    wanted = ["task.created.v1", "task.completed.v1"]
    created = await start(http, {"url": receiver.at(path), "secret": secret, "events": wanted})
    assert created["webhook"] == {"url": receiver.at(path), "events": wanted}
    _events, state = await finished(http, created["task_id"])
    payloads = verified_payloads(receiver.requests(path), secret)
    assert [p["type"] for p in payloads] == wanted
    assert [d["event_type"] for d in state["deliveries"]] == wanted
    await check_receiver(db, created["task_id"], payloads, event_types=frozenset(wanted))


async def test_delivery_state_shows_a_pending_retry_that_holds_back_later_events(
    http: httpx.AsyncClient, db: AsyncConnectionPool, receiver: Receiver
) -> None:
    down = True

    def switchable(_attempt: int, _payload: dict[str, Any]) -> tuple[int, float]:
        return (503 if down else 200), 0.0

    path = f"/down/{uuid.uuid4().hex[:6]}"
    created = await start(http, {"url": receiver.at(path, switchable)})
    task_id = created["task_id"]
    deadline = time.monotonic() + 20
    while True:  # until the task ended and its first delivery failed at least once
        state = (await http.get(f"/tasks/{task_id}/webhook")).json()
        task = (await http.get(f"/tasks/{task_id}")).json()
        first = state["deliveries"][0] if state["deliveries"] else None
        if task["status"] == "completed" and first and first["attempts"] >= 1:
            break
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.05)
    assert first["status"] == "pending"
    assert first["last_status_code"] == 503
    assert first["last_error"] == "HTTP 503"
    assert first["next_attempt_at"] is not None
    assert all(d["status"] == "pending" and d["attempts"] == 0 for d in state["deliveries"][1:])
    assert {r.payload["sequence"] for r in receiver.requests(path)} == {1}
    down = False
    events, state = await finished(http, task_id)
    assert all(d["status"] == "delivered" for d in state["deliveries"])
    payloads = verified_payloads(receiver.accepted(path), created["webhook"]["secret"])
    assert [p["id"] for p in payloads] == [e["id"] for e in events]
    await check_receiver(db, task_id, payloads)
