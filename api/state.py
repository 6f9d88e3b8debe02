"""`ApiState`: what one API app owns, built in one place and closed in order.

The app's clients (Postgres pool, broker, Temporal) open with the lifespan;
the stream gate, its counters and the metrics exist from the app's creation,
so `/metrics` and the stream cap work before the first request. Tests and the
bench get the same object from `app.state.api`.
"""

from __future__ import annotations

import asyncio
from functools import partial
from types import TracebackType

from prometheus_client import Histogram

from api.middleware import request_seconds
from api.services import Services
from api.stream_gate import StreamGate
from api.stream_ticker import StreamTicker
from broker import BrokerStatus, EventBroker
from broker.factory import make_broker
from settings import Settings
from store import EventStore, TaskReader, open_pool
from telemetry.metrics import Metrics
from temporal.client import connect_client
from temporal.tasks import TaskClient


class ApiState:
    def __init__(self, settings: Settings, *, broker: EventBroker | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.gate = StreamGate(settings.sse_max_streams)
        # The one clock of this app's SSE streams (heartbeats, idle and send timeouts).
        self.stream_ticker = StreamTicker(
            heartbeat_seconds=settings.sse_heartbeat_seconds,
            idle_timeout_seconds=settings.sse_idle_timeout_seconds,
            send_timeout_seconds=settings.sse_send_timeout_seconds,
        )
        self.request_seconds: Histogram = request_seconds(self.metrics)
        self._given_broker = broker
        self._services: Services | None = None
        self._register_metrics()

    @property
    def services(self) -> Services:
        if self._services is None:
            raise RuntimeError("the API's clients are not open (outside the app's lifespan)")
        return self._services

    async def __aenter__(self) -> Services:
        settings = self.settings
        pool = await open_pool(
            settings.require_database_url(),
            min_size=settings.db_pool_min_size,
            max_size=settings.db_pool_max_size,
            timeout=settings.db_pool_timeout_seconds,
            check=True,  # a dead pooled connection must not fail a caller's request
            prepared_statements=settings.database_prepared_statements,
        )
        broker = self._given_broker or make_broker(
            settings, client_name=f"{settings.redis_client_name}-api"
        )
        try:
            await broker.connect()
            temporal = TaskClient.from_settings(await connect_client(settings), settings)
        except BaseException:
            await broker.close()
            await pool.close()
            raise
        self._services = Services(
            settings=settings,
            pool=pool,
            broker=broker,
            temporal=temporal,
            events=EventStore(pool),
            tasks=TaskReader(pool),
        )
        return self._services

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        services, self._services = self._services, None
        if services is not None:
            await services.broker.close()
            await services.pool.close()

    def _register_metrics(self) -> None:
        metrics, counters, gate = self.metrics, self.gate.counters, self.gate
        for name, description in (
            ("heals", "streams healed from the store (gaps and resync notices)"),
            ("gap_heals", "streams healed from the store after a sequence gap"),
            ("resync_heals", "streams healed from the store after a queue overflow or reconnect"),
            ("idle_timeouts", "streams ended after the idle timeout"),
            ("store_fallbacks", "streams that started without a live subscription (Redis away)"),
            ("store_polls", "store reads standing in for live delivery while Redis was away"),
            ("stream_errors", "streams ended by an error frame (event: error)"),
            ("store_retries", "stream store reads tried again after the store did not answer"),
            ("send_timeouts", "streams dropped because the client stopped reading"),
            ("rejected", "streams refused with 503 at the stream cap"),
            ("invalid_messages", "broker messages refused by the event decoder and skipped"),
            ("dropped_duplicates", "live deliveries dropped as already sent"),
        ):
            exported = "duplicates_dropped" if name == "dropped_duplicates" else name
            metrics.counter(
                f"taskplane_sse_{exported}", description, partial(_field, counters, name)
            )
        metrics.gauge(
            "taskplane_sse_streams_open",
            "SSE streams open now",
            partial(_field, counters, "open_streams"),
        )
        metrics.gauge(
            "taskplane_sse_streams_limit",
            "the stream cap of this app",
            partial(_field, gate, "limit"),
        )
        self._register_broker_metrics()
        metrics.pool(lambda: self._services.pool.get_stats() if self._services else None)
        metrics.gauge("taskplane_asyncio_tasks", "asyncio tasks alive in this process", _task_count)

    def _register_broker_metrics(self) -> None:
        def stat(field: str) -> float:
            if self._services is None:
                return 0.0
            return float(getattr(self._services.broker.stats(), field))

        for field, description in (
            ("topics", "topics with a live subscriber"),
            ("subscribers", "live subscriptions (one per open stream)"),
            ("buffered", "deliveries waiting in all subscriber queues"),
            ("max_buffered", "deliveries waiting in the deepest subscriber queue"),
        ):
            self.metrics.gauge(f"taskplane_broker_{field}", description, partial(stat, field))
        for field, description in (
            ("dropped", "live messages dropped by a full subscriber queue (then healed)"),
            ("resyncs", "resync notices sent to subscribers (overflows and reconnects)"),
            ("reconnects", "live broker connections lost and re-established"),
        ):
            self.metrics.counter(f"taskplane_broker_{field}", description, partial(stat, field))

        def connected() -> float:
            services = self._services
            up = services is not None and services.broker.status() is BrokerStatus.CONNECTED
            return float(up)

        self.metrics.gauge(
            "taskplane_broker_connected", "1 when the broker connection is up", connected
        )


def _field(source: object, name: str) -> float:
    return float(getattr(source, name))


def _task_count() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # scraped outside the event loop's thread
        return 0.0
