"""The worker's bulk-operation part: a Temporal worker of its own on `<task queue>-bulk`.

Bulk operations run on their own task queue, beside the tasks' one, so that their
activities never wait for an activity slot behind the very tasks they are to cancel: a
worker whose slots all hold long steps (a thousand tasks each sleeping an hour) still
runs the operation that cancels them. Its counts go on the worker's `/metrics`:
operations started and completed, and tasks acted on by action and outcome.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.worker import Worker

from activities.bulk import BulkActivities, BulkStats
from schemas.bulk import bulk_task_queue
from settings import Settings
from settings.bulk import BulkSettings
from telemetry.metrics import LabelledValues, Metrics
from temporal.bulk import control_for_bulk
from temporal.interceptors import LogContextInterceptor
from temporal.parked_runs import ParkedRuns
from temporal.tasks import TaskClient
from worker.temporal_worker import production_runner
from workflows.bulk import BulkOperationWorkflow

# Bulk activities at once on one worker (each acts on a page of tasks, at its own rate).
MAX_BULK_ACTIVITIES = 10


def build_bulk_worker(
    settings: Settings, client: Client, pool: AsyncConnectionPool, metrics: Metrics
) -> Worker:
    # Started as the API starts tasks: a task parked in the store has no run to ask yet.
    tasks = ParkedRuns(TaskClient.from_settings(client, settings), pool)
    bulk = BulkActivities(pool, partial(control_for_bulk, tasks), BulkSettings())
    register_bulk_metrics(metrics, bulk.stats)
    return Worker(
        client,
        task_queue=bulk_task_queue(settings.task_queue),
        workflows=[BulkOperationWorkflow],
        activities=[bulk.select, bulk.act, bulk.finish],
        workflow_runner=production_runner(settings.workflow_sandbox),
        interceptors=[LogContextInterceptor()],
        max_concurrent_activities=MAX_BULK_ACTIVITIES,
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_grace_seconds),
        max_heartbeat_throttle_interval=timedelta(seconds=1),
        default_heartbeat_throttle_interval=timedelta(seconds=1),
    )


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
