"""The worker process: Temporal worker (workflows + activities), outbox relay, durable handlers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.control import ControlActivities
from activities.demo import DemoActivities
from activities.recorder import EventRecorder
from activities.recording import RecordingActivities
from broker.redis import RedisBroker
from schemas.plugins import TaskTypePlugin, installed_plugins, register_input_models
from settings import Settings, get_settings
from store import open_pool
from store.processed import ProcessedEvents
from telemetry import configure_logging
from telemetry.exit import exit_now
from telemetry.metrics import MetricsPortTakenError
from telemetry.tracing import configure_tracing, shutdown_tracing
from temporal.client import connect_client, ensure_search_attributes
from temporal.closures import ResetDetailsFromHistory
from temporal.interceptors import LogContextInterceptor
from temporal.runtime import SdkMetricsPortTakenError, metrics_runtime
from webhooks.dispatcher import WebhookDispatcher
from webhooks.metrics import register_webhook_metrics
from worker.handlers import build_handler_runner, stop_handlers
from worker.metrics import start_worker_metrics
from worker.reconciler import build_reconciler
from worker.relay import build_recorder_and_relay, register_relay_metrics
from workflows.registry import register_runner
from workflows.task_workflow import TaskWorkflow

log = logging.getLogger(__name__)

# Our own pure modules and pydantic are imported once, not per workflow run.
SANDBOX_PASSTHROUGH = (
    "schemas",
    "pydantic",
    # The registry's state (built-in and plugin runners) must be the worker's, not a
    # fresh copy per run; runners are deterministic functions, safe to share.
    "workflows.registry",
    "workflows.context",
    "workflows.demo",
)


def workflow_runner(extra_passthrough: Sequence[str] = ()) -> SandboxedWorkflowRunner:
    modules = (*SANDBOX_PASSTHROUGH, *extra_passthrough)
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*modules)
    )


def build_worker(
    client: Client,
    recorder: EventRecorder,
    *,
    task_queue: str,
    shutdown_grace: timedelta = timedelta(seconds=10),
    max_cached_workflows: int = 1000,
    plugins: Sequence[TaskTypePlugin] = (),
) -> Worker:
    """The Temporal worker with every workflow and activity; tests build theirs here too."""
    plugin_activities: list[Callable[..., Any]] = []
    for plugin in plugins:
        register_runner(plugin.name, plugin.runner)
        plugin_activities.extend(plugin.activities(recorder))
    register_input_models(plugins)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[TaskWorkflow],
        activities=[
            RecordingActivities(recorder).record_event,
            DemoActivities(recorder).run_step,
            ControlActivities(client).request_cancellation,
            *plugin_activities,
        ],
        workflow_runner=workflow_runner([m for p in plugins for m in p.sandbox_modules]),
        interceptors=[LogContextInterceptor()],  # tracing, when on, comes with the client
        graceful_shutdown_timeout=shutdown_grace,
        max_cached_workflows=max_cached_workflows,
        # Heartbeats reach the server at least every second, so a cancel (which
        # rides on the heartbeat response) stops a step within about a second.
        max_heartbeat_throttle_interval=timedelta(seconds=1),
        default_heartbeat_throttle_interval=timedelta(seconds=1),
    )


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    pool = await open_pool(
        settings.require_database_url(),
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        timeout=settings.db_pool_timeout_seconds,
    )
    broker = RedisBroker(
        settings.require_redis_url(),
        stream_maxlen=settings.broker_stream_maxlen,
        publish_timeout=settings.publish_timeout_seconds,
        client_name=f"{settings.redis_client_name}-worker",
    )
    metrics = start_worker_metrics(settings, pool, broker)
    try:
        await broker.connect()
        sdk_metrics = metrics_runtime(
            settings.worker_metrics_host, settings.worker_metrics_temporal_port
        )
        client = await connect_client(settings, runtime=sdk_metrics)
        await ensure_search_attributes(client, settings.temporal_namespace)
        recorder, relay = build_recorder_and_relay(
            settings, pool, broker, reset_details=ResetDetailsFromHistory(client)
        )
        register_relay_metrics(relay)
        worker = build_worker(
            client,
            recorder,
            task_queue=settings.task_queue,
            shutdown_grace=timedelta(seconds=settings.worker_shutdown_grace_seconds),
            max_cached_workflows=settings.worker_max_cached_workflows,
            plugins=installed_plugins(),
        )
        handlers = build_handler_runner(broker, ProcessedEvents(pool), settings)
        webhooks = WebhookDispatcher.from_settings(pool, settings)
        register_webhook_metrics(webhooks)
        relay_task = asyncio.create_task(
            relay.run(settings.require_database_url() if settings.relay_listen else None),
            name="outbox-relay",
        )
        handlers_task = asyncio.create_task(handlers.run(), name="event-handlers")
        webhooks_task = asyncio.create_task(webhooks.run(), name="webhook-deliveries")
        loops = [relay_task, webhooks_task]
        if settings.reconcile_enabled:
            reconciler = build_reconciler(settings, client, pool, recorder)
            loops.append(asyncio.create_task(reconciler.run(), name="reconciler"))
        async with worker:
            log.info("worker started", extra={"task_queue": settings.task_queue})
            await stop.wait()
            log.info("worker stopping")
        await stop_handlers(handlers, handlers_task)
        for task in loops:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await metrics.aclose()
        await broker.close()
        await pool.close()


async def _main() -> int:
    settings = get_settings()
    configure_logging(settings.log_level)
    configure_tracing(settings, component="worker")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await run_worker(settings, stop)
    except (MetricsPortTakenError, SdkMetricsPortTakenError) as exc:
        log.critical("worker not started: %s", exc)
        return 1
    return 0


def main() -> None:
    code = asyncio.run(_main())
    shutdown_tracing()
    exit_now(code)
