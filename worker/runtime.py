"""`WorkerRuntime`: every part of one worker, built from settings and supervised as one.

`async with WorkerRuntime(settings) as rt:` opens the pool and the broker, connects
to Temporal, builds the recorder, the outbox relay, the durable handlers (those
`TASKPLANE_EVENT_HANDLERS` names, and any given here), the webhook dispatcher, the
reconciler, the pruner (retention) and the metrics, and runs every loop in one
`asyncio.TaskGroup`: a loop that dies takes the whole runtime down (its error
ends the `async with`), so a supervisor restarts a broken worker instead of
leaving it running without, say, its relay. Leaving the block stops the parts in
order: the Temporal worker first (running activities finish), then the durable
handlers (each finishes its current event), then the other loops, then the
metrics server, the broker and the pool.

The worker process (`worker/main.py`), the fault tests, the integration tests and
the bench all run this; they differ only in settings and in what they pass in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any

from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.worker import Worker

from activities.admission import AdmissionActivities, Waker
from activities.recorder import EventRecorder
from broker.cancelling import cancel_until_done
from broker.factory import RedisFamilyBroker, make_broker
from schemas.plugins import TaskTypePlugin, installed_plugins
from settings import Settings
from settings.deployment import get_deployment_settings
from store import open_pool
from store.admission import AdmissionStore
from store.processed import ProcessedEvents
from telemetry.metrics import Metrics, MetricsServer
from temporal.client import connect_client, ensure_search_attributes
from temporal.closures import ResetDetailsFromHistory
from temporal.runtime import metrics_runtime
from temporal.tasks import TaskClient
from webhooks.dispatcher import WebhookDispatcher
from webhooks.metrics import register_webhook_metrics
from worker.admission_keeper import AdmissionKeeper, register_admission_metrics
from worker.bulk_worker import build_bulk_worker
from worker.event_handler import EventHandler
from worker.handler_setup import build_handler_runner, stop_handlers
from worker.handlers import HandlerRunner
from worker.metrics import WorkerGauges, register_worker_metrics
from worker.pruner import Pruner, build_pruner
from worker.pruner_metrics import register_pruner_metrics
from worker.reconciler import Reconciler, build_reconciler, register_reconciler_metrics
from worker.relay import OutboxRelay, build_recorder_and_relay
from worker.temporal_worker import build_worker, workflow_polling

log = logging.getLogger(__name__)


# Builds the Temporal worker of a runtime: (client, recorder, task queue) → Worker.
MakeWorker = Callable[[Client, EventRecorder, str], Worker]


class WorkerRuntime:
    def __init__(
        self,
        settings: Settings,
        *,
        handlers: Sequence[EventHandler] = (),
        plugins: Sequence[TaskTypePlugin] | None = None,
        make_worker: MakeWorker | None = None,
        client_name: str = "worker",
    ) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self._extra_handlers = handlers
        self._plugins = plugins
        self._make_worker = make_worker
        self._client_name = client_name
        self._stack = contextlib.AsyncExitStack()
        self._group: asyncio.TaskGroup | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._worker_task: asyncio.Task[None] | None = None
        self._bulk_task: asyncio.Task[None] | None = None
        self._handlers_task: asyncio.Task[None] | None = None
        # Set when a part died: the group is already cancelling every other one.
        self._broken = False
        self.metrics_server: MetricsServer | None = None
        # Set by __aenter__:
        self.pool: AsyncConnectionPool
        self.broker: RedisFamilyBroker
        self.client: Client
        self.recorder: EventRecorder
        self.relay: OutboxRelay
        self.handlers: HandlerRunner
        self.webhooks: WebhookDispatcher
        self.reconciler: Reconciler | None = None
        self.pruner: Pruner | None = None
        self.worker: Worker
        self.bulk_worker: Worker  # bulk operations, on a task queue of their own
        self.gauges: WorkerGauges
        self.admission: AdmissionStore
        self.waker: Waker

    async def __aenter__(self) -> WorkerRuntime:
        try:
            await self._build()
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        log.info("worker started", extra={"task_queue": self.settings.task_queue})
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        log.info("worker stopping")
        try:
            await self._stop_loops()
            assert self._group is not None
            if exc_type is None or issubclass(exc_type, asyncio.CancelledError):
                # Cancelled: maybe by a loop that died; the group raises that loop's error.
                await self._group.__aexit__(exc_type, exc, traceback)
            else:  # the block's own error goes on as it is, not wrapped in a group
                await self._group.__aexit__(None, None, None)
        finally:
            await self._stack.aclose()

    async def _build(self) -> None:
        settings, stack = self.settings, self._stack
        if settings.worker_metrics_port is not None:  # first: a taken port stops the start
            self.metrics_server = self.metrics.serve(
                settings.worker_metrics_host, settings.worker_metrics_port
            )
            stack.callback(self.metrics_server.close)
        self.pool = await open_pool(
            settings.require_database_url(),
            min_size=settings.db_pool_min_size,
            max_size=settings.db_pool_max_size,
            timeout=settings.db_pool_timeout_seconds,
            prepared_statements=settings.database_prepared_statements,
        )
        stack.push_async_callback(self.pool.close)
        self.broker = make_broker(
            settings, client_name=f"{settings.redis_client_name}-{self._client_name}"
        )
        stack.push_async_callback(self.broker.close)
        await self.broker.connect()
        sdk_metrics = metrics_runtime(
            settings.worker_metrics_host, settings.worker_metrics_temporal_port
        )
        self.client = await connect_client(settings, runtime=sdk_metrics)
        await ensure_search_attributes(self.client, settings.temporal_namespace)
        self.recorder, self.relay = build_recorder_and_relay(
            settings,
            self.pool,
            self.broker,
            reset_details=ResetDetailsFromHistory(self.client),
            metrics=self.metrics,
        )
        # Unwound after the Temporal worker stopped and before the pool and the broker
        # close: marks still gathering are written, not left for the relay to republish.
        stack.push_async_callback(self._flush_marks)
        self.admission = AdmissionStore(self.pool, settings.tenant_weight_map)
        # A parked task is woken with Signal-With-Start, started as the API starts tasks.
        self.waker = Waker(
            self.client, self.admission, TaskClient.from_settings(self.client, settings)
        )
        self.handlers = build_handler_runner(
            self.broker, ProcessedEvents(self.pool), settings, self.metrics
        )
        self.webhooks = WebhookDispatcher.from_settings(self.pool, settings)
        register_webhook_metrics(self.metrics, self.webhooks)
        for handler in self._extra_handlers:
            self.handlers.register(handler)
        if settings.reconcile_enabled:
            keeper = AdmissionKeeper(
                self.client,
                self.admission,
                self.waker,
                wake_after=settings.admission_wake_after_seconds,
                check_after=settings.admission_check_after_seconds,
                batch=settings.reconcile_batch_size,
            )
            self.reconciler = build_reconciler(
                settings, self.client, self.pool, self.recorder, self.metrics.count_error, keeper
            )
            register_reconciler_metrics(self.metrics, self.reconciler.stats)
            register_admission_metrics(self.metrics, keeper, self.waker)
        if settings.retention_enabled:
            self.pruner = build_pruner(settings, self.client, self.pool, self.metrics.count_error)
            register_pruner_metrics(self.metrics, self.pruner)
        self.gauges = WorkerGauges(
            self.pool, self.broker, refresh_seconds=settings.metrics_refresh_seconds
        )
        register_worker_metrics(self.metrics, self.gauges)
        if self._make_worker is not None:
            self.worker = self._make_worker(self.client, self.recorder, settings.task_queue)
        else:
            self.worker = build_worker(
                self.client,
                self.recorder,
                task_queue=settings.task_queue,
                shutdown_grace=timedelta(seconds=settings.worker_shutdown_grace_seconds),
                max_cached_workflows=settings.worker_max_cached_workflows,
                task_slots=settings.worker_task_slots,
                activity_slots=settings.worker_activity_slots,
                polling=workflow_polling(settings),
                plugins=installed_plugins() if self._plugins is None else self._plugins,
                pool=self.pool,
                admission=AdmissionActivities(self.admission, self.waker),
                deployment_config=get_deployment_settings().deployment_config(),
                sandboxed=settings.workflow_sandbox,
            )
        self.bulk_worker = build_bulk_worker(settings, self.client, self.pool, self.metrics)

    async def _flush_marks(self) -> None:
        try:
            await self.recorder.flush_marks()
        except Exception:  # at-least-once holds: the relay republishes the unmarked rows
            log.warning("published marks not written at stop", exc_info=True)

    async def _start(self) -> None:
        settings = self.settings
        self._group = asyncio.TaskGroup()
        # Entered here and left in __aexit__, in the same task: the block's body runs
        # inside the group, so a loop that dies cancels it.
        await self._group.__aenter__()
        listen = settings.require_database_direct_url() if settings.relay_listen else None
        self._loop(self.relay.run(listen), "outbox-relay")
        self._loop(self.webhooks.run(), "webhook-deliveries")
        self._loop(self.gauges.run(), "metrics-refresh")
        if self.reconciler is not None:
            self._loop(self.reconciler.run(), "reconciler")
        if self.pruner is not None:
            self._loop(self.pruner.run(), "pruner")
        self._handlers_task = self._loop(self.handlers.run(), "event-handlers")
        self._worker_task = self._loop(self.worker.run(), "temporal-worker")
        self._bulk_task = self._loop(self.bulk_worker.run(), "bulk-worker")

    def _loop(self, loop: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        assert self._group is not None
        task = self._group.create_task(loop, name=name)
        task.add_done_callback(self._on_part_done)
        self._loops.append(task)
        return task

    def _on_part_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._broken = True

    async def _stop_loops(self) -> None:
        if self._broken:
            return  # a part died: the group cancels the others, nothing stops gracefully
        if self._worker_task is not None and not self._worker_task.done():
            await self.worker.shutdown()  # running activities finish first
            log.info("temporal worker stopped")
        if self._bulk_task is not None and not self._bulk_task.done():
            await self.bulk_worker.shutdown()  # a page cut short is retried elsewhere
        if self._handlers_task is not None and not self._handlers_task.done():
            await stop_handlers(self.handlers, self._handlers_task)
            log.info("durable handlers stopped")
        stopped = (self._worker_task, self._bulk_task, self._handlers_task)
        others = [t for t in self._loops if t not in stopped]
        await cancel_until_done(others)
