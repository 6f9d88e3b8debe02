"""The FastAPI application: lifespan-owned clients, routes, problem+json errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.cors import install_cors
from api.creation_turns import register_turn_metrics
from api.middleware import RequestContextMiddleware
from api.problems import install_problem_handlers
from api.rate_limits import register_plugin_rates, register_rate_metrics
from api.routes import bulk, control, events, health, schedules, tasks
from api.routes import schemas as schema_routes
from api.routes.ui import install_page
from api.security import install_security
from api.sse_handoff import StreamHandoffApp
from api.state import ApiState
from broker import EventBroker
from schemas.plugins import installed_plugins, register_input_models
from settings import Settings, get_settings
from webhooks import api as webhooks


class TaskplaneApp(StreamHandoffApp, FastAPI):
    """FastAPI, with SSE streams served in front of every middleware, Starlette's
    own included (`api.sse_handoff`): a stream's frames are ours and uvicorn's."""


def create_app(settings: Settings | None = None, *, broker: EventBroker | None = None) -> FastAPI:
    settings = settings or get_settings()
    plugins = installed_plugins()
    register_input_models(plugins)  # plugin task types are accepted too
    register_plugin_rates(plugins)  # and their start rates and debounce
    state = ApiState(settings, broker=broker)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with state as services, app.state.start_rates:
            app.state.services = services
            yield

    app = TaskplaneApp(
        title="Taskplane",
        version="0.1.0",
        summary="Observable, controllable, never-lose-an-event tasks on Temporal.",
        lifespan=lifespan,
    )
    app.state.api = state
    # The cap on concurrent SSE streams: one gate per app, and one app per process.
    app.state.stream_gate = state.gate
    app.state.stream_ticker = state.stream_ticker
    install_security(app, settings)  # API keys, tenants, stream tokens, limits
    register_rate_metrics(state.metrics, app.state.start_rates)
    register_turn_metrics(state.metrics, app.state.creation_turns)
    install_problem_handlers(app, state.metrics.count_error)
    app.include_router(bulk.router)  # before `tasks`: `/tasks/bulk` is no task id
    app.include_router(tasks.router)
    app.include_router(control.router)
    app.include_router(events.router)
    app.include_router(webhooks.router)
    app.include_router(health.router)
    app.include_router(schema_routes.router)
    app.include_router(schedules.router)
    install_page(app)  # the task page at `/` (api/static/)
    # Outside authentication: preflights need no key, refusals carry CORS headers.
    install_cors(app, settings.cors_origins)
    # Added last, so it is the outermost: every response, whoever makes it, gets its
    # X-Request-ID, and every log line of the request its `request_id`.
    app.add_middleware(
        RequestContextMiddleware,
        request_seconds=state.request_seconds,
        count_error=state.metrics.count_error,
    )
    return app
