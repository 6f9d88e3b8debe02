"""What the worker adds to its `/metrics`: tasks by status, durable consumption, its DB pool.

The relay, the webhook dispatcher and the recorder's publish histogram register their own
figures; this module exports the rest of what an operator watches on a worker,
read from the runtime's objects at scrape time; the read model is counted by a
loop every `metrics_refresh_seconds`, never inside a scrape.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import partial
from typing import Protocol, runtime_checkable

import psycopg
from psycopg_pool import AsyncConnectionPool

from broker import BrokerUnavailableError, EventBroker
from broker.redis_stream_reports import GroupBacklog, StreamBacklog
from schemas.tasks import TaskStatus
from store.stats import tasks_by_status
from telemetry.metrics import LabelledValues, Metrics

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


def register_worker_metrics(metrics: Metrics, gauges: WorkerGauges) -> None:
    """Export `gauges`: task counts, durable consumption, the pool, the stream's backlog."""

    def by_status() -> LabelledValues:
        counts = gauges.task_counts
        if counts is None:
            return []
        return [
            (float(counts.get(status.value, 0)), {"status": status.value}) for status in TaskStatus
        ]

    metrics.gauges("taskplane_tasks", "tasks in the read model by status", by_status)
    for name, description in (
        ("consumed", "durable deliveries to this worker's event handlers"),
        ("redelivered", "durable deliveries claimed again after a handler did not acknowledge"),
        ("acked", "durable deliveries acknowledged"),
        ("invalid", "durable messages that were not valid events (dead-lettered at once)"),
        ("dead_lettered", "durable messages moved to the dead-letter stream"),
        ("trim_gaps", "trim gaps found: stream entries trimmed before a group read them"),
        ("unhealed_gaps", "trim gaps skipped without healing (a consumer with no healer)"),
    ):
        metrics.counter(
            f"taskplane_durable_{name}",
            description,
            partial(_broker_stat, gauges.broker, name),
        )
    metrics.pool(gauges.pool.get_stats)
    _register_backlog(metrics, gauges)
    metrics.counter(
        "taskplane_metrics_refresh_failures",
        "failed refreshes of store-read gauges (taskplane_tasks)",
        lambda: gauges.refresh_failures,
    )


def _broker_stat(broker: EventBroker, name: str) -> float:
    return float(getattr(broker.stats(), name))


@runtime_checkable
class BacklogSource(Protocol):
    """A broker with a durable stream whose backlog can be read (Redis, or a Redis Cluster)."""

    async def stream_backlog(self) -> StreamBacklog: ...


def _group_labels(backlog: GroupBacklog) -> dict[str, str]:
    """`group`, and on a Redis Cluster the partition stream (`partition`: its index)."""
    if backlog.partition is None:
        return {"group": backlog.group}
    return {"group": backlog.group, "partition": backlog.partition}


def _register_backlog(metrics: Metrics, gauges: WorkerGauges) -> None:
    """Lag of every consumer group: what an operator watches before the stream cap
    (`TASKPLANE_BROKER_STREAM_MAXLEN`) trims entries a group has not read."""

    def groups() -> list[GroupBacklog]:
        return gauges.backlog.groups if gauges.backlog is not None else []

    def length() -> LabelledValues:
        backlog = gauges.backlog
        if backlog is None:
            return []
        if backlog.partition_lengths:  # a Redis Cluster: one per partition stream
            return [(float(n), {"partition": p}) for p, n in backlog.partition_lengths]
        return [(float(backlog.length), {})]

    metrics.gauges("taskplane_durable_stream_length", "entries in the durable stream", length)
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
                (float(getattr(g, field)), _group_labels(g))
                for g in groups()
                if getattr(g, field) is not None
            ]

        metrics.gauges(f"taskplane_durable_group_{name}", description, read)
