"""What the worker adds to its `/metrics`: tasks by status, durable consumption, its DB pool.

The relay, the webhook dispatcher and the recorder's publish histogram register their own
instruments; this module exports the rest of what an operator watches on a
worker. Instruments are made once per process and read the current worker's
objects at scrape time; the read model is counted by a loop every
`metrics_refresh_seconds`, never inside a scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import psycopg
from psycopg_pool import AsyncConnectionPool

from broker import BrokerUnavailableError, EventBroker
from broker.redis_streams import GroupBacklog, StreamBacklog
from schemas.tasks import TaskStatus
from settings import Settings
from store.stats import tasks_by_status
from telemetry.metrics import (
    LabelledValues,
    MetricsServer,
    observe,
    observe_each,
    observe_pool,
    serve_metrics,
)

log = logging.getLogger(__name__)


@dataclass
class WorkerGauges:
    """The worker's objects the instruments read, and the cached task counts."""

    pool: AsyncConnectionPool
    broker: EventBroker
    refresh_seconds: float = 15.0
    # None until the first refresh: a fresh worker exports no task counts rather than zeros.
    task_counts: dict[str, int] | None = None
    refresh_failures: int = 0
    # The durable stream's backlog (a Redis broker only), read on the same refresh.
    backlog: StreamBacklog | None = None

    async def refresh(self) -> None:
        self.task_counts = await tasks_by_status(self.pool)
        if isinstance(self.broker, BacklogSource):
            try:
                self.backlog = await self.broker.stream_backlog()
            except BrokerUnavailableError as exc:  # Redis away: keep the last figures
                self.refresh_failures += 1
                log.warning("stream backlog not refreshed", extra={"error": str(exc)})

    async def run(self) -> None:
        """Refresh the counts until cancelled; a failure keeps the last ones and is counted."""
        while True:
            try:
                await self.refresh()
            except (psycopg.Error, OSError, TimeoutError) as exc:
                self.refresh_failures += 1
                log.warning("task counts not refreshed", extra={"error": str(exc)})
            await asyncio.sleep(self.refresh_seconds)


_current: WorkerGauges | None = None


def register_worker_metrics(gauges: WorkerGauges) -> None:
    """Export `gauges` (the instruments are made on the first call of the process)."""
    global _current
    first = _current is None
    _current = gauges
    if first:
        _register()


def _register() -> None:
    def by_status() -> LabelledValues:
        counts = _current.task_counts if _current is not None else None
        if counts is None:
            return []
        return [
            (float(counts.get(status.value, 0)), {"status": status.value}) for status in TaskStatus
        ]

    observe_each("taskplane_tasks", "tasks in the read model by status", by_status)

    def broker_stat(name: str) -> Callable[[], float]:
        def read() -> float:
            return float(getattr(_current.broker.stats(), name)) if _current is not None else 0.0

        return read

    for name, description in (
        ("consumed", "durable deliveries to this worker's event handlers"),
        ("redelivered", "durable deliveries claimed again after a handler did not acknowledge"),
        ("acked", "durable deliveries acknowledged"),
        ("invalid", "durable messages that were not valid events (dead-lettered at once)"),
        ("dead_lettered", "durable messages moved to the dead-letter stream"),
    ):
        observe(f"taskplane_durable_{name}", description, broker_stat(name), counter=True)

    observe_pool(lambda: _current.pool.get_stats() if _current is not None else None)
    _register_backlog()

    def failures() -> float:
        return float(_current.refresh_failures) if _current is not None else 0.0

    observe(
        "taskplane_metrics_refresh_failures",
        "failed refreshes of store-read gauges (taskplane_tasks)",
        failures,
        counter=True,
    )


@runtime_checkable
class BacklogSource(Protocol):
    """A broker with a durable stream whose backlog can be read (`RedisBroker`)."""

    async def stream_backlog(self) -> StreamBacklog: ...


def _register_backlog() -> None:
    """Lag of every consumer group: what an operator watches before the stream cap
    (`TASKPLANE_BROKER_STREAM_MAXLEN`) trims entries a group has not read."""

    def groups() -> list[GroupBacklog]:
        backlog = _current.backlog if _current is not None else None
        return backlog.groups if backlog is not None else []

    def length() -> LabelledValues:
        backlog = _current.backlog if _current is not None else None
        return [] if backlog is None else [(float(backlog.length), {})]

    observe_each("taskplane_durable_stream_length", "entries in the durable stream", length)
    for name, description, field in (
        ("pending", "entries delivered to a group's consumers and not yet acknowledged", "pending"),
        ("lag", "entries not yet delivered to the group (Redis >= 7 reports it)", "lag"),
        ("lag_seconds", "age of the oldest entry not yet delivered to the group", "lag_seconds"),
        (
            "behind_trim",
            "1 when the stream cap trimmed entries the group never read",
            "behind_trim",
        ),
    ):

        def read(field: str = field) -> LabelledValues:
            return [
                (float(getattr(g, field)), {"group": g.group})
                for g in groups()
                if getattr(g, field) is not None
            ]

        observe_each(f"taskplane_durable_group_{name}", description, read)


@dataclass
class WorkerMetrics:
    """The worker's metrics endpoint and the loop that refreshes its store-read gauges."""

    server: MetricsServer | None
    refresher: asyncio.Task[None]

    async def aclose(self) -> None:
        self.refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.refresher
        if self.server is not None:
            self.server.close()


def start_worker_metrics(
    settings: Settings, pool: AsyncConnectionPool, broker: EventBroker
) -> WorkerMetrics:
    """Register the worker's gauges, start their refresh loop and serve `/metrics`.

    Served on `worker_metrics_host:worker_metrics_port` unless the port is off.
    """
    server = None
    if settings.worker_metrics_port is not None:  # first: a taken port stops the start here
        server = serve_metrics(settings.worker_metrics_host, settings.worker_metrics_port)
    gauges = WorkerGauges(pool, broker, refresh_seconds=settings.metrics_refresh_seconds)
    register_worker_metrics(gauges)
    refresher = asyncio.create_task(gauges.run(), name="metrics-refresh")
    return WorkerMetrics(server, refresher)
