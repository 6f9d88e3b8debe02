"""What every fault test sets up: a worker, an API, tasks, and observers of each task.

`in_process_worker` runs the worker process's own `WorkerRuntime` — recorder,
Temporal worker, relay (with its LISTEN), durable handlers, webhooks, reconciler —
inside the test's event loop, on whatever URLs the test gives it (a proxy it can
break, a Redis it can stop), with the fault tests' effects handler added. Only the
kill test needs a worker *process* (tests/e2e's `ProcessStack`).

Observers of a run, all compared with the store by `tests.invariants`:

- `SSEWatcher`: one SSE client of one task, from its first event;
- the effects handler (`tests.faults.effects`), a durable consumer group;
- `BrokerStreamView`: the broker's own durable stream (a publish may land twice
  there; every event must land at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from redis.exceptions import RedisError

from settings import Settings
from tests.faults.effects import effects_handler, handled
from tests.integration.live_api import live_api
from tests.invariants import Event, Observer, load_history
from tests.polling import until
from tests.sse import payload, read_frames
from worker.runtime import MakeWorker, WorkerRuntime

STREAM = "taskplane:events"
QUICK_TASK = {"steps": 2, "step_seconds": 0.3, "progress_ticks": 3}


def fault_settings(**overrides: Any) -> Settings:
    """Settings for a test's worker: quick relay and handler timings, no metrics ports."""
    values: dict[str, Any] = {
        "task_queue": f"faults-{uuid.uuid4().hex[:8]}",
        "publish_timeout_seconds": 0.3,
        "outbox_grace_seconds": 0.5,
        "outbox_poll_seconds": 1.0,
        "relay_max_backoff_seconds": 1.0,
        "handler_claim_idle_seconds": 1.0,
        "handler_block_seconds": 0.2,
        "db_pool_min_size": 1,
        "db_pool_max_size": 8,
        "worker_metrics_port": None,
        "worker_metrics_temporal_port": None,
        # Every fault test's task ends by recording; a reconciler here would also record
        # endings of other tests' runs (one namespace, one store). tests/e2e and
        # test_reconciler.py run it.
        "reconcile_enabled": False,
        **overrides,
    }
    return Settings(**values)


@asynccontextmanager
async def in_process_worker(
    settings: Settings, *, group: str, make_worker: MakeWorker | None = None
) -> AsyncIterator[WorkerRuntime]:
    """The production worker (`WorkerRuntime`) in the test's event loop, plus the fault
    tests' effects handler as durable group `group`."""
    async with WorkerRuntime(
        settings,
        handlers=[effects_handler(group)],
        make_worker=make_worker,
        client_name=f"faults-{group}",
    ) as runtime:
        yield runtime


@asynccontextmanager
async def worker_and_api(
    settings: Settings,
    stream: BrokerStreamView,
    *,
    group: str,
    api_database_url: str | None = None,
    api_redis_url: str | None = None,
    api_temporal_address: str | None = None,
    make_worker: MakeWorker | None = None,
    **api_settings: Any,
) -> AsyncIterator[tuple[WorkerRuntime, httpx.AsyncClient]]:
    """A test's in-process worker, a live API on the same servers and a client of it.

    The API may reach a server another way than the worker (`api_database_url`,
    `api_redis_url`, `api_temporal_address`: not past the worker's fault proxy, say);
    `api_settings` tune the API. Returns once the worker's handler
    group exists and the broker stream is marked, so everything the test does next is
    observed.
    """
    async with (
        in_process_worker(settings, group=group, make_worker=make_worker) as worker,
        live_api(
            database_url=api_database_url or settings.require_database_url(),
            redis_url=api_redis_url or settings.require_redis_url(),
            temporal_address=api_temporal_address or settings.require_temporal_address(),
            task_queue=settings.task_queue,
            **api_settings,
        ) as api,
        httpx.AsyncClient(base_url=api.url, timeout=30) as http,
    ):
        await stream.group_ready(group)
        await stream.mark()
        yield worker, http


@dataclass
class SSEWatcher:
    """One SSE client of one task, reading from its first event until the stream ends."""

    name: str
    task_id: str
    envelopes: list[dict[str, Any]] = field(default_factory=list)
    status: int | None = None
    error: str | None = None  # how the stream broke, if it did (the checker then sees gaps)
    reading: asyncio.Task[None] | None = None

    def start(self, http: httpx.AsyncClient) -> None:
        self.reading = asyncio.create_task(self._read(http), name=f"sse-{self.name}")

    async def _read(self, http: httpx.AsyncClient) -> None:
        path = f"/tasks/{self.task_id}/events"
        try:
            async with http.stream("GET", path, timeout=60) as response:
                self.status = response.status_code
                async for frame in read_frames(response):
                    if frame.is_event and frame.event != "error":
                        self.envelopes.append(payload(frame))
        except httpx.HTTPError as exc:
            self.error = repr(exc)

    def observer(self) -> Observer:
        return Observer.sse(self.name, self.task_id, self.envelopes)

    async def stop(self) -> None:
        if self.reading is not None:
            self.reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reading


class BrokerStreamView:
    """Events that reached the broker's durable stream since `mark()`, for some tasks."""

    def __init__(self, redis_url: str) -> None:
        self._redis = Redis.from_url(redis_url, decode_responses=True)
        self._after = "0-0"

    async def mark(self) -> None:
        newest: Any = await self._redis.xrevrange(STREAM, count=1)
        self._after = newest[0][0] if newest else "0-0"

    async def events(self, task_ids: Iterable[str]) -> list[Event]:
        """What the stream holds for these tasks; nothing while Redis cannot be reached."""
        wanted = set(task_ids)
        try:
            entries: Any = await self._redis.xrange(STREAM, min=f"({self._after}")
        except RedisError:
            return []
        found: list[Event] = []
        for _, fields in entries:
            # Other tests in the session publish deliberate garbage to this stream.
            with contextlib.suppress(ValueError, KeyError, TypeError):
                found.append(Event.from_envelope(fields["payload"]))
        return [e for e in found if e.task_id in wanted]

    async def group_ready(self, group: str, within: float = 20) -> None:
        async def exists() -> bool:
            with contextlib.suppress(Exception):
                groups: Any = await self._redis.xinfo_groups(STREAM)
                return any(g["name"] == group for g in groups)
            return False

        await until(exists, within=within, what=f"consumer group {group}")

    async def close(self) -> None:
        await self._redis.aclose()


async def create_task(http: httpx.AsyncClient, task_input: dict[str, Any] | None = None) -> str:
    response = await http.post(
        "/tasks", json={"type": "demo.pipeline", "input": task_input or QUICK_TASK}
    )
    assert response.status_code == 202, response.text
    return str(response.json()["task_id"])


def watch(http: httpx.AsyncClient, task_id: str, clients: int = 2) -> list[SSEWatcher]:
    watchers = [SSEWatcher(f"sse {n} of {task_id[:8]}", task_id) for n in range(clients)]
    for watcher in watchers:
        watcher.start(http)
    return watchers


def collector(
    pool: AsyncConnectionPool,
    task_ids: list[str],
    watchers: list[SSEWatcher],
    group: str,
    stream: BrokerStreamView | None = None,
) -> Callable[[], Awaitable[tuple[list[Event], list[Observer]]]]:
    """What `wait_until_delivered` polls: the store's history and every observer's view."""

    async def collect() -> tuple[list[Event], list[Observer]]:
        history = await load_history(pool, task_ids)
        observers = [w.observer() for w in watchers]
        observers.append(Observer(f"handler {group}", await handled(pool, group, task_ids)))
        if stream is not None:
            observers.append(
                Observer("broker stream", await stream.events(task_ids), at_least_once=True)
            )
        return history, observers

    return collect


async def pending_rows(pool: AsyncConnectionPool, task_ids: list[str]) -> int:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM outbox WHERE task_id = ANY(%s) AND published_at IS NULL",
            (task_ids,),
        )
        row = await cursor.fetchone()
    return int(row[0]) if row else 0
