"""Request ids, log fields, metrics settings and tracing that leaves histories replayable."""

from __future__ import annotations

import io
import json
import logging
import socket
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from api.middleware import RequestContextMiddleware, request_id_from, request_seconds
from settings import Settings
from telemetry.logs import JsonFormatter, bound_log_context, log_context
from telemetry.metrics import Metrics
from telemetry.tracing import (
    current_trace_headers,
    tracer,
    tracing_enabled,
)
from tests.unit.test_replay import load as load_history
from worker.temporal_worker import workflow_runner
from workflows.debounce import DebounceWorkflow
from workflows.deferral import DeferralNoticeWorkflow
from workflows.scheduled import ScheduledTaskWorkflow
from workflows.task_workflow import TaskWorkflow

HISTORIES = Path(__file__).parent.parent / "replay" / "histories"


def small_app(metrics: Metrics | None = None) -> Starlette:
    metrics = metrics or Metrics()

    async def ok(request: Request) -> PlainTextResponse:
        logging.getLogger("api.middleware").info("inside", extra={"seen": log_context()})
        return PlainTextResponse("ok")

    async def boom(request: Request) -> PlainTextResponse:
        raise RuntimeError("a bug")

    # Where `create_app` puts it: a user middleware, inside Starlette's error middleware.
    return Starlette(
        routes=[
            Route("/items/{item_id}", ok),
            Route("/tasks/{task_id}", ok),
            Route("/tasks/{task_id}/events", ok),
            Route("/boom", boom),
        ],
        middleware=[
            Middleware(
                RequestContextMiddleware,
                request_seconds=request_seconds(metrics),
                count_error=metrics.count_error,
            )
        ],
    )


def client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("4f1c2a9e-7d7b-4e0e-9a55-1b1b0b9b2f6d", True),
        ("req_01HZX3:retry/2", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("", False),
        ("has space", False),
        ("-starts-with-dash", False),
        ("new\nline", False),
    ],
)
def test_only_sane_incoming_request_ids_are_kept(sent: str, kept: bool) -> None:
    assert (request_id_from(sent) == sent) is kept
    assert len(request_id_from(None)) == 32


async def test_the_request_id_is_echoed_and_bound_in_the_logs(log_lines: io.StringIO) -> None:
    async with client(small_app()) as http:
        response = await http.get("/items/7", headers={"X-Request-ID": "abc-123"})
        generated = await http.get("/items/8", headers={"X-Request-ID": "bad id"})
    assert response.headers["X-Request-ID"] == "abc-123"
    new_id = generated.headers["X-Request-ID"]
    assert new_id != "bad id"
    assert len(new_id) == 32
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    inside = [line for line in lines if line["message"] == "inside"]
    assert [line["request_id"] for line in inside] == ["abc-123", new_id]
    access = [line for line in lines if line["message"] == "request"]
    assert [line["route"] for line in access] == ["/items/{item_id}"] * 2
    assert [line["request_id"] for line in access] == ["abc-123", new_id]
    assert access[0]["status"] == 200
    assert log_context() == {}  # nothing leaks out of a request


async def test_every_line_of_a_request_about_a_task_carries_its_task_id(
    log_lines: io.StringIO,
) -> None:
    task_id = "4f1c2a9e-7d7b-4e0e-9a55-1b1b0b9b2f6d"
    async with client(small_app()) as http:
        await http.get(f"/tasks/{task_id}")
        await http.get(f"/tasks/{task_id}/events")
        await http.get("/items/7")
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    # Per request: the handler's own line, then the access line.
    assert [line["message"] for line in lines] == ["inside", "request"] * 3
    assert [line.get("task_id") for line in lines] == [task_id] * 4 + [None, None]


async def test_an_unhandled_error_is_a_problem_with_the_request_id(
    log_lines: io.StringIO,
) -> None:
    async with client(small_app()) as http:
        response = await http.get("/boom", headers={"X-Request-ID": "err-1"})
        missing = await http.get("/nowhere")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["X-Request-ID"] == "err-1"
    assert response.json()["status"] == 500
    assert missing.status_code == 404
    assert missing.headers["X-Request-ID"]
    failed = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    (error,) = [line for line in failed if line["message"] == "request failed"]
    assert error["request_id"] == "err-1"
    assert "RuntimeError: a bug" in error["exception"]


async def test_a_request_continues_the_callers_trace(spans: InMemorySpanExporter) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with client(small_app()) as http:
        await http.get("/items/1", headers={"traceparent": traceparent})
    (span,) = spans.get_finished_spans()
    assert span.name == "GET /items/{item_id}"
    assert span.context is not None
    assert format(span.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == "b7ad6b7169203331"


def test_temporal_logger_fields_become_top_level_fields() -> None:
    record = logging.makeLogRecord(
        {
            "name": "temporalio.workflow",
            "msg": "task started",
            "levelno": logging.INFO,
            "levelname": "INFO",
            "task_id": "t-1",
            "temporal_workflow": {
                "workflow_id": "task-t-1",
                "run_id": "r-1",
                "workflow_type": "TaskWorkflow",
                "namespace": "default",
            },
        }
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["task_id"] == "t-1"
    assert line["workflow_id"] == "task-t-1"
    assert line["run_id"] == "r-1"
    assert "temporal_workflow" not in line


def test_log_lines_in_a_span_carry_its_ids(spans: InMemorySpanExporter) -> None:
    record = logging.makeLogRecord({"msg": "x", "levelname": "INFO"})
    assert "trace_id" not in json.loads(JsonFormatter().format(record))
    with tracer().start_as_current_span("work") as span, bound_log_context(task_id="t"):
        line = json.loads(JsonFormatter().format(record))
        assert current_trace_headers()["traceparent"].split("-")[2] == line["span_id"]
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert line["task_id"] == "t"


def test_tracing_is_off_by_default_and_costs_no_span() -> None:
    assert Settings().tracing_exporter == "none"
    assert not tracing_enabled()
    assert current_trace_headers() == {}
    assert not tracer().start_span("x").get_span_context().is_valid


@pytest.mark.parametrize(("raw", "port"), [("9999", 9999), ("", None), ("-1", None), ("0", 0)])
def test_a_metrics_port_can_be_turned_off(
    monkeypatch: pytest.MonkeyPatch, raw: str, port: int | None
) -> None:
    monkeypatch.setenv("TASKPLANE_WORKER_METRICS_PORT", raw)
    monkeypatch.setenv("TASKPLANE_WORKER_METRICS_TEMPORAL_PORT", raw)
    settings = Settings()
    assert settings.worker_metrics_port == port
    assert settings.worker_metrics_temporal_port == port


async def test_stored_histories_replay_with_the_tracing_interceptor(
    spans: InMemorySpanExporter,
) -> None:
    """Tracing adds headers and spans, never commands: old histories still replay."""
    replayer = Replayer(
        workflows=[TaskWorkflow, DebounceWorkflow, ScheduledTaskWorkflow, DeferralNoticeWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
        interceptors=[TracingInterceptor(tracer())],
    )
    paths = sorted(HISTORIES.glob("v*_*.json"))
    assert paths
    for path in paths:
        result = await replayer.replay_workflow(load_history(path))
        assert result.replay_failure is None, path.name


async def test_the_api_app_sends_request_ids_on_its_own_responses() -> None:
    from api.app import create_app

    app = create_app(Settings())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        health = await http.get("/healthz", headers={"X-Request-ID": "probe-1"})
        problem = await http.get("/tasks/not-a-uuid/history", headers={"X-Request-ID": "p-2"})
    assert health.headers["X-Request-ID"] == "probe-1"
    assert problem.headers["X-Request-ID"] == "p-2"
    assert problem.status_code >= 400


def test_taskplane_up_gives_the_worker_known_or_free_metrics_ports() -> None:
    from cli.stack_info import worker_metrics
    from devstack.ports import free_port

    port = free_port()
    env, rows = worker_metrics(Settings(worker_metrics_port=port, worker_metrics_temporal_port=-1))
    assert env == {
        "TASKPLANE_WORKER_METRICS_PORT": str(port),
        "TASKPLANE_WORKER_METRICS_TEMPORAL_PORT": "",  # off stays off
    }
    assert rows == [("Worker metrics", f"http://127.0.0.1:{port}/metrics")]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        env, rows = worker_metrics(Settings(worker_metrics_temporal_port=busy))
    chosen = int(env["TASKPLANE_WORKER_METRICS_TEMPORAL_PORT"])
    assert chosen != busy
    assert rows[-1] == ("Temporal SDK metrics", f"http://127.0.0.1:{chosen}/metrics")
