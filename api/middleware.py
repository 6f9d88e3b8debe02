"""Every request: an `X-Request-ID`, a log context, a latency observation, and a span.

One pure ASGI middleware, outermost, rather than `BaseHTTPMiddleware` (which
wraps every response body in a task and a stream, costly on long SSE streams)
or opentelemetry-instrumentation-asgi (which also makes a span per `send`,
that is one per SSE frame). It:

- takes the client's `X-Request-ID` when it is sane (1 to 128 characters of
  letters, digits and `._:/+=@-`), or makes one, and sends it back on every
  response, errors included;
- binds it as `request_id` in the log context, so every line logged while the
  request runs carries it, and logs one access line per request;
- records `taskplane_http_request_seconds{method, route, status}` (the route
  template, never the raw path, so task ids do not become label values);
- while tracing is on, runs the request in a SERVER span that continues the
  caller's W3C `traceparent`, so `POST /tasks` is the root of the task's trace;
- answers an unhandled exception with a problem+json 500 (logged with its
  traceback), not a plain-text one that would lose the request id.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry.trace import Span, SpanKind, Status, StatusCode, use_span
from prometheus_client import Histogram
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import PROBLEM_JSON, problem_body
from api.sse_handoff import HANDOFF, Handoff
from telemetry.logs import bound_log_context
from telemetry.metrics import CountError, Metrics
from telemetry.tracing import context_from_headers, tracer, tracing_enabled

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=@-]{0,127}")
# Probes and scrapes: counted, but logged only at debug level.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def request_seconds(metrics: Metrics) -> Histogram:
    """The request histogram `RequestContextMiddleware` observes into, in `metrics`."""
    return metrics.histogram(
        "taskplane_http_request_seconds",
        "API requests by method, route template and status (SSE: the stream's life)",
        ("method", "route", "status"),
        (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0),
    )


def request_id_from(value: str | None) -> str:
    """The caller's id when it is sane, else a new one."""
    if value is not None and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


class RequestContextMiddleware:
    def __init__(
        self, app: ASGIApp, *, request_seconds: Histogram, count_error: CountError
    ) -> None:
        self.app = app
        self._request_seconds = request_seconds
        self._count_error = count_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        request_id = request_id_from(headers.get("x-request-id"))
        method: str = scope["method"]
        started = time.perf_counter()
        status = 0  # no response started yet

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        # A request about one task: every line it logs carries the task's id as a field.
        task = _TASK_PATH.match(scope["path"])
        fields = {"task_id": task.group(1)} if task else {}

        def finish(error: BaseException | None) -> None:
            route = _route(scope)
            elapsed = time.perf_counter() - started
            self._request_seconds.labels(method, route, str(status)).observe(elapsed)
            if span is not None:
                _finish_span(span, method, route, status, error)
            level = logging.DEBUG if scope["path"] in QUIET_PATHS else logging.INFO
            log.log(
                level,
                "request",
                extra={
                    "method": method,
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                },
            )

        span = _start_server_span(method, headers)
        handoff: Handoff | None = scope.get(HANDOFF)
        with bound_log_context(request_id=request_id, **fields), _current(span):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                log.exception("request failed", extra={"method": method, "path": scope["path"]})
                self._count_error("api", "unhandled")
                if status:
                    finish(sys.exc_info()[1])
                    raise  # the response has started: nothing can be said any more
                status = 500
                await _internal_error(scope, send, request_id)
            except BaseException:
                finish(None)
                raise
            if handoff is not None and handoff.taken:
                # The stream goes on in front of this middleware: the request ends with it.
                handoff.on_finish(functools.partial(self._stream_ended, scope, finish))
                return
            finish(None)

    def _stream_ended(
        self,
        scope: Scope,
        finish: Callable[[BaseException | None], None],
        error: BaseException | None,
    ) -> None:
        if isinstance(error, Exception):  # what `except Exception` above says of a request
            log.error(
                "request failed",
                exc_info=error,
                extra={"method": scope["method"], "path": scope["path"]},
            )
            self._count_error("api", "unhandled")
        finish(error)


_TASK_PATH = re.compile(r"^/tasks/([0-9a-fA-F-]{36})(?:/|$)")


def _headers(scope: Scope) -> dict[str, str]:
    return {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in scope.get("headers", ())
    }


def _route(scope: Scope) -> str:
    """The matched route's template (`/tasks/{task_id}`), or a fixed word when none matched."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


def _start_server_span(method: str, headers: dict[str, str]) -> Span | None:
    """The request's SERVER span (tracing on only), ended by `_finish_span`."""
    if not tracing_enabled():
        return None
    return tracer().start_span(
        method,  # renamed to "METHOD /route/{template}" once routing has matched
        context=context_from_headers(headers),
        kind=SpanKind.SERVER,
        attributes={"http.request.method": method},
    )


@contextmanager
def _current(span: Span | None) -> Iterator[None]:
    if span is None:
        yield
        return
    with use_span(span, end_on_exit=False):
        yield


def _finish_span(
    span: Span, method: str, route: str, status: int, error: BaseException | None
) -> None:
    span.update_name(f"{method} {route}")
    span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    if isinstance(error, Exception):
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    elif status >= 500:
        span.set_status(Status(StatusCode.ERROR))
    span.end()


async def _internal_error(scope: Scope, send: Send, request_id: str) -> None:
    body = json.dumps(
        problem_body(500, "the server failed to handle this request", instance=scope["path"])
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                (REQUEST_ID_HEADER.lower().encode(), request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
