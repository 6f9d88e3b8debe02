"""A stream handed to `StreamHandoffApp` keeps what the middlewares give a request."""

from __future__ import annotations

import contextlib
import io
import json
import logging

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from api.middleware import RequestContextMiddleware, request_seconds
from api.sse_handoff import HANDOFF, Handoff, StreamHandoffApp
from telemetry.logs import log_context
from telemetry.metrics import Metrics

TASK = "0b6f8f7e-2f6a-4c3e-9a0e-3d2b1c0a9f8e"


class HandedStream(Response):
    """Starts through the middlewares, then streams from in front of them."""

    def __init__(self, *, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handoff: Handoff = scope[HANDOFF]
        await send({"type": "http.response.start", "status": 200, "headers": []})

        async def serve() -> None:
            logging.getLogger("api.middleware").info("streaming", extra={"seen": log_context()})
            await handoff.send({"type": "http.response.body", "body": b"a", "more_body": True})
            if self.fail:
                raise RuntimeError("a bug in the stream")
            await handoff.send({"type": "http.response.body", "body": b"b"})

        handoff.hand(serve, lambda: None)


class App(StreamHandoffApp, Starlette):
    pass


def app(metrics: Metrics) -> App:
    async def events(request: Request) -> Response:
        return HandedStream(fail=request.query_params.get("fail") == "1")

    return App(
        routes=[Route("/tasks/{task_id}/events", events)],
        middleware=[
            Middleware(
                RequestContextMiddleware,
                request_seconds=request_seconds(metrics),
                count_error=metrics.count_error,
            )
        ],
    )


def client(asgi: App) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://test")


async def test_a_handed_stream_keeps_its_request_id_log_context_and_access_line(
    log_lines: io.StringIO, spans: InMemorySpanExporter
) -> None:
    async with client(app(Metrics())) as http:
        response = await http.get(f"/tasks/{TASK}/events", headers={"X-Request-ID": "r-1"})
    assert response.headers["X-Request-ID"] == "r-1"  # the start went through the middleware
    assert response.content == b"ab"
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    messages = [line["message"] for line in lines]
    # The access line is the request's end: after the stream, not when the route returned.
    assert messages.index("streaming") < messages.index("request")
    streaming = lines[messages.index("streaming")]
    assert streaming["request_id"] == "r-1"
    assert streaming["task_id"] == TASK
    access = lines[messages.index("request")]
    assert (access["route"], access["status"], access["request_id"]) == (
        "/tasks/{task_id}/events",
        200,
        "r-1",
    )
    (server,) = [span for span in spans.get_finished_spans() if span.name.startswith("GET")]
    assert server.name == "GET /tasks/{task_id}/events"
    assert log_context() == {}  # nothing leaks out of the request


async def test_a_handed_stream_that_fails_is_logged_and_counted_as_the_request(
    log_lines: io.StringIO,
) -> None:
    metrics = Metrics()
    async with client(app(metrics)) as http:
        # The response had started: the error can only end the connection.
        with contextlib.suppress(RuntimeError):
            await http.get(f"/tasks/{TASK}/events?fail=1")
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    failed = [line for line in lines if line["message"] == "request failed"]
    assert len(failed) == 1
    assert failed[0]["task_id"] == TASK
    access = [line for line in lines if line["message"] == "request"]
    assert [line["status"] for line in access] == [200]
