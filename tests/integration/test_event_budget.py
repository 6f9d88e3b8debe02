"""The per-task event budget on real Postgres, Redis and Temporal.

Past `TASKPLANE_MAX_EVENTS_PER_TASK` an event is refused where it is recorded (the
append statement, under the task row's lock), the task fails with a `task.failed.v1`
naming the budget, and that event (like every terminal one and step failures) is still
recorded: the stream ends with it. `POST /tasks` refuses up front (422) an input that
alone needs more.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.client import WorkflowFailureError

from activities.recorder import EventRecorder
from broker.redis import RedisBroker
from schemas import EventEnvelope
from schemas.workflow import (
    SIGNAL_PAUSE,
    SIGNAL_RESUME,
    TASK_WORKFLOW,
    TaskWorkflowInput,
    workflow_id_for,
)
from settings import Settings
from store import EventStore, Outbox
from store.budget import EXEMPT_TYPES, EventBudget, EventBudgetExceededError
from temporal.client import connect_client
from tests.integration.api_runs import Servers, run_to_the_end
from tests.invariants import Event, Observer, check_delivery, load_history
from tests.metrics_text import sample
from tests.polling import until
from worker.runtime import WorkerRuntime
from worker.temporal_worker import build_worker

BUDGET = 20


@pytest.fixture(scope="module")
async def broker(redis_url: str) -> AsyncIterator[RedisBroker]:
    the_broker = RedisBroker(redis_url)
    await the_broker.connect()
    yield the_broker
    await the_broker.close()


def budgeted_recorder(pool: AsyncConnectionPool, broker: RedisBroker) -> EventRecorder:
    store = EventStore(pool, budget=EventBudget(BUDGET))
    return EventRecorder(store, Outbox(pool), broker)


def event(task_id: str, event_type: str, data: dict[str, Any]) -> EventEnvelope:
    return EventEnvelope(
        id=str(uuid.uuid4()), type=event_type, subject=task_id, time=datetime.now(UTC), data=data
    )


def progress(task_id: str, percent: float) -> EventEnvelope:
    data = {"index": 1, "name": "s", "percent": percent, "total_steps": 1}
    return event(task_id, "task.step.progress.v1", data)


async def test_concurrent_appends_never_overshoot_and_endings_still_record(
    pool: AsyncConnectionPool,
) -> None:
    store = EventStore(pool, budget=EventBudget(BUDGET))
    task_id = str(uuid.uuid4())
    await store.append(event(task_id, "task.created.v1", {"task_type": "demo.pipeline"}))
    last_in = progress(task_id, 1)
    for n in range(BUDGET - 3):
        await store.append(progress(task_id, n))
    await store.append(last_in)  # sequence BUDGET - 1
    # Racing for the last place: exactly one wins, the rest are refused, nothing written.
    results = await asyncio.gather(
        *(store.append(progress(task_id, 50 + n)) for n in range(6)), return_exceptions=True
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, EventBudgetExceededError)]
    assert (len(won), len(refused)) == (1, 5), results
    assert won[0].sequence == BUDGET
    assert "TASKPLANE_MAX_EVENTS_PER_TASK" in str(refused[0])
    # A repeat of an event recorded in time is still the same event, not a refusal.
    again = await store.append(last_in.model_copy())
    assert (again.duplicate, again.sequence) == (True, BUDGET - 1)
    # The failure of the step and of the task get past the budget.
    step_failed = {"index": 1, "name": "s", "error": "budget", "attempt": 1, "will_retry": False}
    failed = await store.append(event(task_id, "task.step.failed.v1", step_failed))
    ended = await store.append(event(task_id, "task.failed.v1", {"error": "budget"}))
    assert (failed.sequence, ended.sequence) == (BUDGET + 1, BUDGET + 2)
    check_delivery(await load_history(pool, [task_id]), tasks=[task_id])


@pytest.fixture
def servers(database_url: str, redis_url: str, temporal_address: str) -> Servers:
    return Servers(database_url, redis_url, temporal_address)


def assert_failed_on_budget(
    streamed: list[dict[str, Any]], history: list[dict[str, Any]], task_id: str
) -> None:
    assert streamed == history  # the stream delivered the whole history, then ended
    last = history[-1]
    assert last["type"] == "task.failed.v1"
    assert "TASKPLANE_MAX_EVENTS_PER_TASK" in last["data"]["error"]
    counted = [e for e in history if e["type"] not in EXEMPT_TYPES]
    assert len(counted) == BUDGET  # up to the budget, not one more
    assert all(e["type"] in EXEMPT_TYPES for e in history[BUDGET:])
    assert any(e["type"] == "task.step.failed.v1" for e in history[BUDGET:])
    check_delivery(
        [Event.from_envelope(e) for e in history],
        [Observer.sse("sse", task_id, streamed)],
        tasks=[task_id],
    )


async def test_a_pipeline_past_its_budget_fails_with_the_budget_named(
    pool: AsyncConnectionPool, broker: RedisBroker, servers: Servers
) -> None:
    recorder = budgeted_recorder(pool, broker)
    task_id, streamed, history = await run_to_the_end(
        recorder,
        servers,
        "demo.pipeline",
        {"steps": 2, "step_seconds": 0.2, "progress_ticks": 15},
    )
    assert_failed_on_budget(streamed, history, task_id)
    assert history[-1]["data"]["step"] == 2  # step 1 used 17 events, step 2 ran out


async def test_parallel_branches_past_the_budget_all_stop_at_it(
    pool: AsyncConnectionPool, broker: RedisBroker, servers: Servers
) -> None:
    recorder = budgeted_recorder(pool, broker)
    task_id, streamed, history = await run_to_the_end(
        recorder,
        servers,
        "demo.fanout",
        {"branches": 4, "max_parallel": 4, "step_seconds": 0.2, "progress_ticks": 10},
    )
    assert_failed_on_budget(streamed, history, task_id)


@pytest.mark.parametrize(
    ("task_type", "task_input", "settings", "planned", "limit"),
    [
        ("demo.pipeline", {"steps": 1000, "progress_ticks": 100_000}, {}, 100_002_002, 100_000),
        ("demo.fanout", {"branches": 1000, "progress_ticks": 100_000}, {}, 100_002_002, 100_000),
        (
            "demo.pipeline",
            {"steps": 5, "progress_ticks": 10},
            {"max_events_per_task": 50},
            62,
            50,
        ),
    ],
)
async def test_an_input_that_needs_more_than_the_budget_is_refused(
    servers: Servers,
    task_type: str,
    task_input: dict[str, Any],
    settings: dict[str, Any],
    planned: int,
    limit: int,
) -> None:
    async with (
        servers.api(**settings) as api,
        httpx.AsyncClient(base_url=api.url, timeout=30) as http,
    ):
        answer = await http.post("/tasks", json={"type": task_type, "input": task_input})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert (problem["limit"], problem["planned_events"]) == (limit, planned)
    assert problem["limit_name"] == "max_events_per_task"
    assert "TASKPLANE_MAX_EVENTS_PER_TASK" in problem["detail"]


async def test_the_worker_takes_its_budget_and_rate_from_settings_and_counts_refusals(
    servers: Servers, pool: AsyncConnectionPool
) -> None:
    settings = Settings(
        database_url=servers.database_url,
        redis_url=servers.redis_url,
        temporal_address=servers.temporal_address,
        task_queue=f"budget-{uuid.uuid4().hex[:8]}",
        worker_metrics_port=0,
        worker_metrics_temporal_port=None,
        reconcile_enabled=False,
        retention_enabled=False,
        max_events_per_task=10,
        progress_max_rate=4.0,
        progress_burst=3,
    )
    task_id = str(uuid.uuid4())
    async with WorkerRuntime(settings) as runtime, httpx.AsyncClient(timeout=5) as http:
        recorder = runtime.recorder
        assert recorder.progress_rates is not None
        assert (recorder.progress_rates.max_rate, recorder.progress_rates.burst) == (4.0, 3)

        async def record(n: int, event_type: str, data: dict[str, Any]) -> None:
            await recorder.record(
                event_id=f"{task_id}-{n}", task_id=task_id, event_type=event_type, data=data
            )

        await record(0, "task.created.v1", {"task_type": "demo.pipeline", "input": {}})
        for n in range(1, 10):
            await record(n, "task.step.progress.v1", {"index": 1, "name": "s", "percent": n})
        with pytest.raises(EventBudgetExceededError):
            await record(10, "task.step.progress.v1", {"index": 1, "name": "s", "percent": 99})
        await record(11, "task.failed.v1", {"error": "out of budget"})
        assert runtime.metrics_server is not None
        text = (await http.get(f"http://127.0.0.1:{runtime.metrics_server.port}/metrics")).text
    assert sample(text, "taskplane_event_budget_refused_total") == 1
    assert sample(text, "taskplane_progress_coalesced_total") == 0
    history = await load_history(pool, [task_id])
    assert [e.type for e in history][-2:] == ["task.step.progress.v1", "task.failed.v1"]
    check_delivery(history, tasks=[task_id])


async def test_a_task_level_event_past_the_budget_fails_the_task_too(
    pool: AsyncConnectionPool, broker: RedisBroker, servers: Servers
) -> None:
    """The workflow's own recording (the `record_event` local activity) is refused the
    same way: here `task.resumed.v1`, the 11th event of a task with a budget of 10."""
    recorder = EventRecorder(EventStore(pool, budget=EventBudget(10)), Outbox(pool), broker)
    client = await connect_client(Settings(temporal_address=servers.temporal_address))
    task_id, queue = str(uuid.uuid4()), f"budget-{uuid.uuid4().hex[:8]}"
    store = EventStore(pool)

    async def recorded(event_type: str) -> bool:
        return any(e.event_type == event_type for e in await store.history(task_id))

    async with build_worker(client, recorder, task_queue=queue):
        handle = await client.start_workflow(
            TASK_WORKFLOW,
            TaskWorkflowInput(
                task_id=task_id,
                task_type="demo.pipeline",
                input={"steps": 2, "step_seconds": 3.0, "progress_ticks": 6},
            ),
            id=workflow_id_for(task_id),
            task_queue=queue,
        )
        await until(lambda: recorded("task.step.started.v1"), what="step 1 started")
        # Step 1 runs 3 s: the pause arrives during it and takes effect after it.
        await handle.signal(SIGNAL_PAUSE)
        await until(lambda: recorded("task.paused.v1"), within=30, what="task.paused.v1")
        await handle.signal(SIGNAL_RESUME)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    types = [e.event_type for e in await store.history(task_id)]
    # created, started, 6 ticks, completed, paused (10 events); resumed refused; failed
    assert types[-2:] == ["task.paused.v1", "task.failed.v1"]
    assert len(types) == 11
    failed = orjson.loads((await store.history(task_id, after=10))[0].envelope_json)
    assert "TASKPLANE_MAX_EVENTS_PER_TASK" in failed["data"]["error"]
    check_delivery(await load_history(pool, [task_id]), tasks=[task_id])
