"""Limits that keep one client (or one tenant) from exhausting an API process.

Each limit is a setting (`TASKPLANE_LIMIT_*`, docs/security.md) and each refusal
is a problem+json a client can act on:

- request body size: 413, counted on the body as it streams in (a missing or
  lying `Content-Length` does not get past it);
- page sizes: 422 (`limit` of `GET /tasks` and of `GET /tasks/{id}/history`);
- concurrent SSE streams per tenant: 429 with `Retry-After` (the per-process cap,
  503, is `api.stream_gate.StreamGate`);
- task creation rate per tenant: 429 with `Retry-After`, a token bucket;
- sequence cursors (`Last-Event-ID`, `after`): 400 unless a whole number in
  0..2^31-1, so no value a client makes up reaches SQL.

The stream and rate counters live in this process: with N API processes behind a
load balancer a tenant gets up to N times each (see docs/security.md).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import PROBLEM_JSON, ProblemError, problem_body

# Sequences are dense per task, from 1; a 32-bit bound is far beyond any real task
# (Temporal's history limit ends a workflow long before) and keeps SQL safe.
MAX_SEQUENCE = 2**31 - 1
_DIGITS = re.compile(r"^[0-9]{1,10}$")

# How long a client refused at the per-tenant stream cap should wait.
STREAM_RETRY_AFTER_SECONDS = 5


def parse_sequence(raw: str, name: str) -> int:
    """A client-supplied sequence number, or a 400 problem saying what is wrong."""
    value = raw.strip()
    if not _DIGITS.match(value) or int(value) > MAX_SEQUENCE:
        raise ProblemError(
            400,
            f"{name} must be a whole number from 0 to {MAX_SEQUENCE}, got {raw[:40]!r}",
        )
    return int(value)


def check_page_size(limit: int, maximum: int, setting: str) -> None:
    """The configured page cap may be lower than the one the OpenAPI document states."""
    if limit > maximum:
        raise ProblemError(
            422,
            f"limit must be at most {maximum} (TASKPLANE_{setting.upper()})",
            errors=[{"loc": ["query", "limit"], "msg": f"at most {maximum}", "type": "too_large"}],
        )


# --- request body size -------------------------------------------------------------


class BodyTooLargeError(HTTPException):
    """Raised from `receive()`: FastAPI re-raises HTTPExceptions met while reading the
    body (anything else would become a 400), so the app's problem handler answers."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class BodyLimitMiddleware:
    """413 for bodies over `max_bytes`: at once when `Content-Length` says so, else as
    soon as the streamed body passes the limit (chunked, or a lying length)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        # A malformed Content-Length never gets here: the HTTP server refuses it.
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.max_bytes)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLargeError:
            if started:  # nothing left to answer with; the server closes the connection
                raise
            await self._too_large(scope, send)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        body = problem_body(
            413,
            f"the request body is larger than {self.max_bytes} bytes (TASKPLANE_LIMIT_BODY_BYTES)",
            instance=scope.get("path"),
        )
        await _send_problem(send, 413, body)


async def _send_problem(send: Send, status: int, body: dict[str, object]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(payload)).encode()),
                # The unread rest of the body makes the connection unusable for another request.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


# --- concurrent streams per tenant ---------------------------------------------------


class TenantStreamGate:
    """At most `limit` open SSE streams per tenant in this process.

    `enabled` is false in open mode (no API keys): one tenant there, so the
    process cap (`SSE_MAX_STREAMS`, 503) is the only one that means anything.
    """

    def __init__(self, limit: int, *, enabled: bool = True) -> None:
        if limit < 1:
            raise ValueError(f"the per-tenant stream limit must be at least 1, got {limit}")
        self.limit = limit
        self.enabled = enabled
        self._open: dict[str, int] = {}

    def open(self, tenant: str) -> int:
        return self._open.get(tenant, 0)

    def full(self, tenant: str) -> bool:
        return self.enabled and self.open(tenant) >= self.limit

    def try_acquire(self, tenant: str) -> bool:
        if self.full(tenant):
            return False
        self._open[tenant] = self.open(tenant) + 1
        return True

    def release(self, tenant: str) -> None:
        left = self.open(tenant) - 1
        if left > 0:
            self._open[tenant] = left
        else:
            self._open.pop(tenant, None)

    def refusal(self, tenant: str) -> ProblemError:
        return ProblemError(
            429,
            f"tenant {tenant!r} already has its maximum of {self.limit} open streams"
            " on this API process (TASKPLANE_LIMIT_STREAMS_PER_TENANT); close one or retry",
            headers={"Retry-After": str(STREAM_RETRY_AFTER_SECONDS)},
        )


# --- task creation rate per tenant ---------------------------------------------------


class RateLimiter:
    """A token bucket per tenant: `rate` tokens a second, at most `burst` saved up.

    Tenants are few (they come from configuration), so the buckets stay bounded.
    """

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # tenant -> (tokens, at)

    def take(self, tenant: str) -> float:
        """0 when a token was taken; else the seconds until one will be there."""
        now = self._clock()
        tokens, at = self._buckets.get(tenant, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens >= 1:
            self._buckets[tenant] = (tokens - 1, now)
            return 0.0
        self._buckets[tenant] = (tokens, now)
        return (1 - tokens) / self.rate


async def get_creation_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.creation_limiter
    return limiter


async def get_tenant_streams(request: Request) -> TenantStreamGate:
    gate: TenantStreamGate = request.app.state.tenant_streams
    return gate


CreationLimiterDep = Annotated[RateLimiter, Depends(get_creation_limiter)]
TenantStreamsDep = Annotated[TenantStreamGate, Depends(get_tenant_streams)]


def check_creation_rate(limiter: RateLimiter, tenant: str) -> None:
    wait = limiter.take(tenant)
    if wait > 0:
        retry_after = max(1, math.ceil(wait))
        raise ProblemError(
            429,
            f"tenant {tenant!r} creates tasks faster than {limiter.rate:g} a second"
            f" (burst {limiter.burst}; TASKPLANE_LIMIT_TASK_CREATE_PER_SECOND /"
            " _BURST); retry after the Retry-After seconds",
            headers={"Retry-After": str(retry_after)},
        )
