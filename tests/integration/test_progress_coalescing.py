"""Progress coalescing on real Postgres, Redis and Temporal, watched over the real API.

Steps tick progress far faster than the per-task rate: each step still shows its
started event, its first progress value, its last one (100%) and its completed event,
and the stream satisfies the delivery invariants. With a clock that never moves the
gate never reopens after a step's first value, so what is kept is exact.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from activities.coalesce import RateGates
from activities.recorder import EventRecorder
from broker.redis import RedisBroker
from schemas.ids import activity_event_id, attempt_prefix, step_failed_event_id
from settings import Settings
from store import EventStore, Outbox
from temporal.client import connect_client
from tests.integration.api_runs import Servers, run_to_the_end
from tests.invariants import Event, Observer, check_delivery

STEP = ("task.step.started.v1", "task.step.progress.v1", "task.step.completed.v1")


@pytest.fixture(scope="module")
async def broker(redis_url: str) -> AsyncIterator[RedisBroker]:
    the_broker = RedisBroker(redis_url)
    await the_broker.connect()
    yield the_broker
    await the_broker.close()


@pytest.fixture
def servers(database_url: str, redis_url: str, temporal_address: str) -> Servers:
    return Servers(database_url, redis_url, temporal_address)


def coalescing_recorder(
    pool: AsyncConnectionPool, broker: RedisBroker, gates: RateGates
) -> EventRecorder:
    return EventRecorder(EventStore(pool), Outbox(pool), broker, progress_rates=gates)


def check_stream(
    task_id: str, streamed: list[dict[str, Any]], history: list[dict[str, Any]]
) -> None:
    assert streamed == history
    check_delivery(
        [Event.from_envelope(e) for e in history],
        [Observer.sse("sse", task_id, streamed)],
        tasks=[task_id],
    )
    assert len({e["id"] for e in history}) == len(history)


def by_attempt(history: list[dict[str, Any]]) -> dict[tuple[int, int], list[tuple[str, Any]]]:
    """(step index, attempt) -> its events' (type, percent or None), in sequence order."""
    steps: dict[tuple[int, int], list[tuple[str, Any]]] = {}
    for e in history:
        if e["type"].startswith("task.step."):
            key = (e["data"]["index"], e["data"]["attempt"])
            steps.setdefault(key, []).append((e["type"], e["data"].get("percent")))
    return steps


async def test_a_frozen_gate_keeps_each_steps_first_and_last_value(
    pool: AsyncConnectionPool, broker: RedisBroker, servers: Servers
) -> None:
    gates = RateGates(1.0, burst=1, clock=lambda: 0.0)
    recorder = coalescing_recorder(pool, broker, gates)
    ticks = 40
    task_id, streamed, history = await run_to_the_end(
        recorder,
        servers,
        "demo.pipeline",
        {"steps": 2, "step_seconds": 0.2, "progress_ticks": ticks},
    )
    check_stream(task_id, streamed, history)
    assert history[-1]["type"] == "task.completed.v1"
    first = round(100 / ticks, 3)
    kept = [STEP[0], (STEP[1], first), (STEP[1], 100.0), STEP[2]]
    expected = [(kind, None) if isinstance(kind, str) else kind for kind in kept]
    assert by_attempt(history) == {(1, 1): expected, (2, 1): expected}
    assert gates.stats.coalesced == 2 * (ticks - 2)


async def test_a_retried_step_keeps_each_attempts_values_apart(
    pool: AsyncConnectionPool, broker: RedisBroker, servers: Servers
) -> None:
    gates = RateGates(1.0, burst=1, clock=lambda: 0.0)
    recorder = coalescing_recorder(pool, broker, gates)
    task_id, streamed, history = await run_to_the_end(
        recorder,
        servers,
        "demo.pipeline",
        {"steps": 1, "step_seconds": 0.1, "progress_ticks": 10, "flaky_at_step": 1},
    )
    check_stream(task_id, streamed, history)
    steps = by_attempt(history)
    # The failed attempt's last value is recorded before its failure, then attempt 2's own.
    assert steps[(1, 1)] == [
        (STEP[0], None),
        (STEP[1], 10.0),
        (STEP[1], 100.0),
        ("task.step.failed.v1", None),
    ]
    assert steps[(1, 2)] == [(STEP[0], None), (STEP[1], 10.0), (STEP[1], 100.0), (STEP[2], None)]
    # Ids stay what the attempt's identity and its count of recorded events make them
    # (held values take no id), so a repeated recording of any of them dedupes.
    handle = (
        await connect_client(Settings(temporal_address=servers.temporal_address))
    ).get_workflow_handle(f"task-{task_id}")
    run_id = (await handle.describe()).run_id
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_id
        async for e in handle.fetch_history_events()
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert len(scheduled) == 1
    ids = [e["id"] for e in history if e["type"].startswith("task.step.")]
    assert ids == [
        *attempt_ids(handle.id, run_id, scheduled[0], 1, ["started", "progress", "progress"]),
        step_failed_event_id(handle.id, run_id, scheduled[0], 1),
        *attempt_ids(
            handle.id, run_id, scheduled[0], 2, ["started", "progress", "progress", "completed"]
        ),
    ]


def attempt_ids(
    workflow_id: str, run_id: str, activity_id: str, attempt: int, kinds: list[str]
) -> list[str]:
    prefix = attempt_prefix(workflow_id, run_id, activity_id, attempt)
    return [activity_event_id(prefix, kind, n) for n, kind in enumerate(kinds, start=1)]


async def test_parallel_branches_share_the_tasks_gate_and_each_shows_its_end(
    pool: AsyncConnectionPool, broker: RedisBroker, servers: Servers
) -> None:
    gates = RateGates(1.0, burst=1, clock=lambda: 0.0)
    recorder = coalescing_recorder(pool, broker, gates)
    task_id, streamed, history = await run_to_the_end(
        recorder,
        servers,
        "demo.fanout",
        {"branches": 3, "max_parallel": 3, "step_seconds": 0.2, "progress_ticks": 20},
    )
    check_stream(task_id, streamed, history)
    for index in (1, 2, 3):
        values = [p for kind, p in by_attempt(history)[(index, 1)] if kind == STEP[1]]
        assert values == [5.0, 100.0]


async def test_fast_ticks_on_a_real_clock_keep_boundaries_first_and_last(
    pool: AsyncConnectionPool, broker: RedisBroker, servers: Servers
) -> None:
    gates = RateGates(20.0, burst=2)
    recorder = coalescing_recorder(pool, broker, gates)
    ticks = 400  # 800 a second: far above the rate
    task_id, streamed, history = await run_to_the_end(
        recorder,
        servers,
        "demo.pipeline",
        {"steps": 2, "step_seconds": 0.5, "progress_ticks": ticks},
    )
    check_stream(task_id, streamed, history)
    steps = by_attempt(history)
    recorded = 0
    for index in (1, 2):
        events = steps[(index, 1)]
        assert events[0] == (STEP[0], None)
        assert events[-1] == (STEP[2], None)
        values = [p for kind, p in events[1:-1]]
        assert values[0] == round(100 / ticks, 3)
        assert values[-1] == 100.0
        assert values == sorted(values)  # the latest value wins: never an older one later
        recorded += len(values)
    # Every tick is either recorded or counted as coalesced: none vanishes unaccounted.
    assert recorded + gates.stats.coalesced == 2 * ticks
