"""The FastAPI application: lifespan-owned clients, routes, problem+json errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI

from api.middleware import RequestContextMiddleware
from api.problems import install_problem_handlers
from api.routes import events, health, tasks
from api.routes import schemas as schema_routes
from api.routes.ui import install_page
from api.security import install_security
from api.services import Services
from api.streaming import StreamGate, register_stream_metrics
from broker import EventBroker
from broker.redis import RedisBroker
from schemas.plugins import installed_plugins, register_input_models
from settings import Settings, get_settings
from store import EventStore, TaskReader, open_pool
from telemetry.metrics import observe, observe_pool
from temporal.client import connect_client
from temporal.tasks import TaskClient
from webhooks import api as webhooks


def create_app(settings: Settings | None = None, *, broker: EventBroker | None = None) -> FastAPI:
    settings = settings or get_settings()
    register_input_models(installed_plugins())  # plugin task types are accepted too

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await open_pool(
            settings.require_database_url(),
            min_size=settings.db_pool_min_size,
            max_size=settings.db_pool_max_size,
            timeout=settings.db_pool_timeout_seconds,
            check=True,  # a dead pooled connection must not fail a caller's request
        )
        the_broker = broker or RedisBroker(
            settings.require_redis_url(),
            publish_timeout=settings.publish_timeout_seconds,
            client_name=f"{settings.redis_client_name}-api",
        )
        try:
            await the_broker.connect()
            client = TaskClient(
                await connect_client(settings),
                task_queue=settings.task_queue,
                rpc_timeout=timedelta(seconds=settings.temporal_rpc_timeout_seconds),
            )
            app.state.services = Services(
                settings=settings,
                pool=pool,
                broker=the_broker,
                temporal=client,
                events=EventStore(pool),
                tasks=TaskReader(pool),
            )
            yield
        finally:
            await the_broker.close()
            await pool.close()

    app = FastAPI(
        title="Taskplane",
        version="0.1.0",
        summary="Observable, controllable, never-lose-an-event tasks on Temporal.",
        lifespan=lifespan,
    )
    # The cap on concurrent SSE streams: one gate per app, and one app per process.
    app.state.stream_gate = StreamGate(settings.sse_max_streams)
    install_security(app, settings)  # API keys, tenants, stream tokens, limits
    install_problem_handlers(app)
    app.include_router(tasks.router)
    app.include_router(events.router)
    app.include_router(webhooks.router)
    app.include_router(health.router)
    app.include_router(schema_routes.router)
    install_page(app)  # the task page at `/` (api/static/)
    _register_metrics_once(app)
    # Added last, so it is the outermost: every response, whoever makes it, gets its
    # X-Request-ID, and every log line of the request its `request_id`.
    app.add_middleware(RequestContextMiddleware)
    return app


_metrics_registered = False


def _register_metrics_once(app: FastAPI) -> None:
    """OpenTelemetry instruments are process-wide; several apps (tests) share them."""
    global _metrics_registered
    if _metrics_registered:
        return
    _metrics_registered = True

    def broker_of_app() -> EventBroker | None:
        services: Services | None = getattr(app.state, "services", None)
        return services.broker if services else None

    def gate_of_app() -> StreamGate | None:
        gate: StreamGate | None = getattr(app.state, "stream_gate", None)
        return gate

    register_stream_metrics(broker_of_app, gate_of_app)

    def broker_connected() -> float:
        current = broker_of_app()
        return 1.0 if current is not None and current.status().value == "connected" else 0.0

    observe("taskplane_broker_connected", "1 when the broker connection is up", broker_connected)

    def pool_stats() -> dict[str, int] | None:
        services: Services | None = getattr(app.state, "services", None)
        return services.pool.get_stats() if services else None

    observe_pool(pool_stats)
