"""Bulk operations on a worker's `/metrics`: operations started and completed, and the
tasks they acted on by action and outcome (read from `BulkStats` at scrape time)."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client

from activities.bulk import BulkActivities, BulkStats
from settings import Settings
from settings.bulk import BulkSettings
from telemetry.metrics import LabelledValues, Metrics
from temporal.bulk import control_for_bulk
from temporal.tasks import TaskClient


def build_bulk_activities(
    settings: Settings, client: Client, pool: AsyncConnectionPool, metrics: Metrics
) -> BulkActivities:
    """The bulk activities of a worker, their counts on its `/metrics`."""
    tasks = TaskClient(
        client,
        task_queue=settings.task_queue,
        rpc_timeout=timedelta(seconds=settings.temporal_rpc_timeout_seconds),
    )
    bulk = BulkActivities(pool, partial(control_for_bulk, tasks), BulkSettings())
    register_bulk_metrics(metrics, bulk.stats)
    return bulk


def register_bulk_metrics(metrics: Metrics, stats: BulkStats) -> None:
    metrics.counter(
        "taskplane_bulk_operations_started",
        "Bulk operations this worker began selecting tasks for",
        lambda: float(stats.started),
    )
    metrics.counter(
        "taskplane_bulk_operations_completed",
        "Bulk operations this worker completed (every matched task has its outcome)",
        lambda: float(stats.completed),
    )

    def tasks() -> LabelledValues:
        return [
            (float(count), {"action": action, "outcome": outcome})
            for (action, outcome), count in sorted(stats.tasks.items())
        ]

    metrics.counters(
        "taskplane_bulk_tasks",
        "Tasks bulk operations acted on, by action and outcome (done, skipped, failed)",
        tasks,
    )
