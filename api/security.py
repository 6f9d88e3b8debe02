"""Wires tenants, stream tokens and limits into an app (docs/security.md).

One call from `create_app`, so the order of the middlewares is decided here:
authentication runs first (outermost), so a request without a key is refused
before a byte of its body is read; the body limit runs inside it.
"""

from __future__ import annotations

from fastapi import FastAPI

from api.auth import install_auth
from api.creation_turns import CreationTurns
from api.input_links import InputLinks
from api.limits import BodyLimitMiddleware, RateLimiter, TenantStreamGate
from api.openapi import document_problems
from api.rate_limits import StartRates
from api.routes import inputs, stream_tokens
from api.stream_tokens import StreamTokens
from settings import Settings


def install_security(app: FastAPI, settings: Settings) -> None:
    tokens = StreamTokens.from_settings(settings)
    app.state.stream_tokens = tokens
    app.state.input_links = InputLinks.sharing(tokens, ttl_seconds=settings.input_link_ttl_seconds)
    app.state.creation_limiter = RateLimiter(
        settings.limit_task_create_per_second, settings.limit_task_create_burst
    )
    app.state.creation_turns = CreationTurns(settings.limit_task_create_concurrency)
    app.state.start_rates = StartRates.from_settings(settings)  # shared: Redis
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.limit_body_bytes)
    keys = install_auth(app, settings, tokens)  # added last: the outermost of the two
    # One tenant in open mode: the per-process cap (503) is the only stream limit there.
    app.state.tenant_streams = TenantStreamGate(
        settings.limit_streams_per_tenant, enabled=not keys.open
    )
    app.include_router(stream_tokens.router)
    app.include_router(inputs.router)  # deliveries, and the one-time links (public)
    document_problems(app, settings)
