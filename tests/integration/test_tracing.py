"""One trace per task, from `POST /tasks` to each SSE delivery, and logs that name it.

The API (uvicorn, `live_api`) and the worker (`build_worker`) run in the test's
process against the real servers, so one in-memory exporter sees every span of
both. The tree asserted is the one docs/operations.md draws:

    POST /tasks (API, SERVER)
    └─ StartWorkflow:TaskWorkflow
       ├─ RunWorkflow:TaskWorkflow, CompleteWorkflow:TaskWorkflow
       ├─ StartActivity:record_event → RunActivity:record_event → publish, sse deliver
       └─ StartActivity:demo_step   → RunActivity:demo_step   → publish, sse deliver …

The SDK's `TracingInterceptor` makes the workflow's own spans siblings under
`StartWorkflow` (they are zero-length marks, made outside replay). `sse deliver`
(API, CONSUMER) is a child of the span that recorded the event, named by its
envelope's `traceparent`, and links to the `GET …/events` request's span.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from activities.recorder import EventRecorder
from settings import Settings
from telemetry.logs import JsonFormatter, quiet_temporal_loggers
from temporal.client import connect_client
from tests.integration.live_api import live_api
from tests.polling import until
from tests.sse import payload, read_frames
from worker.temporal_worker import build_worker

TERMINAL = "task.completed.v1"


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Log lines as the processes write them (JSON), recorder's debug lines included."""
    quiet_temporal_loggers()  # as configure_logging does in the processes
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    recorder_log = logging.getLogger("activities.recorder")
    # Another test in the session (the bench smoke test) may have quietened `temporalio`.
    temporal_log = logging.getLogger("temporalio")
    levels = root.level, recorder_log.level, temporal_log.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    recorder_log.setLevel(logging.DEBUG)
    temporal_log.setLevel(logging.NOTSET)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        recorder_log.setLevel(levels[1])
        temporal_log.setLevel(levels[2])


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, sorted(s.name for s in spans))
    return found[0]


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


async def _wait_for(exporter: InMemorySpanExporter, name: str, count: int) -> list[ReadableSpan]:
    def finished() -> bool:
        return sum(s.name == name for s in exporter.get_finished_spans()) >= count

    await until(finished, within=10, what=f"{count} {name!r} spans")
    return list(exporter.get_finished_spans())


async def test_one_trace_from_post_through_the_workflow_to_sse_delivery(
    spans: InMemorySpanExporter,
    json_logs: io.StringIO,
    database_url: str,
    redis_url: str,
    temporal_address: str,
    recorder: EventRecorder,
) -> None:
    queue = f"trace-{uuid.uuid4().hex[:8]}"
    client = await connect_client(Settings(temporal_address=temporal_address))
    async with (
        live_api(
            database_url=database_url,
            redis_url=redis_url,
            temporal_address=temporal_address,
            task_queue=queue,
        ) as api,
        build_worker(client, recorder, task_queue=queue),
        httpx.AsyncClient(base_url=api.url, timeout=30) as http,
    ):
        created = await http.post(
            "/tasks",
            json={
                "type": "demo.pipeline",
                "input": {"steps": 1, "step_seconds": 0.2, "progress_ticks": 1},
            },
            headers={"X-Request-ID": "trace-test-1"},
        )
        assert created.status_code == 202, created.text
        assert created.headers["X-Request-ID"] == "trace-test-1"
        task_id = created.json()["task_id"]
        delivered: list[dict[str, Any]] = []
        async with http.stream("GET", f"/tasks/{task_id}/events") as stream:
            generated_id = stream.headers["X-Request-ID"]
            async for frame in read_frames(stream):
                if frame.event:
                    delivered.append(payload(frame))
                if frame.event == TERMINAL:
                    break
        history = (await http.get(f"/tasks/{task_id}/history")).json()["events"]

    types = [e["type"] for e in delivered]
    assert types == [
        "task.created.v1",
        "task.step.started.v1",
        "task.step.progress.v1",
        "task.step.completed.v1",
        TERMINAL,
    ]
    finished = await _wait_for(spans, "sse deliver", len(delivered))

    # The API's request span is the root; Temporal's spans hang under it.
    post = _one(finished, "POST /tasks")
    assert post.kind is SpanKind.SERVER
    assert post.parent is None
    assert post.attributes is not None
    assert post.attributes["http.response.status_code"] == 202
    trace_id = post.context.trace_id if post.context else 0
    start = _one(finished, "StartWorkflow:TaskWorkflow")
    assert _parent_id(start) == _span_id(post)
    for name in ("RunWorkflow:TaskWorkflow", "CompleteWorkflow:TaskWorkflow"):
        assert _parent_id(_one(finished, name)) == _span_id(start)

    # Each activity under the workflow; each event published under the activity that
    # recorded it; the envelope's traceparent names that activity's span.
    recorders = {}
    for name in ("record_event", "demo_step"):
        starts = [s for s in finished if s.name == f"StartActivity:{name}"]
        runs = [s for s in finished if s.name == f"RunActivity:{name}"]
        assert starts, name
        assert len(runs) == len(starts), name
        assert {_parent_id(s) for s in starts} == {_span_id(start)}
        assert {_parent_id(r) for r in runs} <= {_span_id(s) for s in starts}
        recorders.update({_span_id(r): r for r in runs})
    publishes = [s for s in finished if s.name == "publish"]
    assert len(publishes) == len(delivered)
    assert {_parent_id(p) for p in publishes} <= set(recorders)
    requests = {"GET /tasks/{task_id}/events", "GET /tasks/{task_id}/history"}
    assert {s.context.trace_id for s in finished if s.context and s.name not in requests} == {
        trace_id
    }

    by_id = {e["id"]: e for e in history}
    deliveries = [s for s in finished if s.name == "sse deliver"]
    get = _one(finished, "GET /tasks/{task_id}/events")
    assert len(deliveries) == len(delivered)
    for event in delivered:
        traceparent = by_id[event["id"]]["traceparent"]
        assert event["traceparent"] == traceparent  # SSE and history serve the same bytes
        _, trace_hex, span_hex, _ = traceparent.split("-")
        assert int(trace_hex, 16) == trace_id
        assert int(span_hex, 16) in recorders
        (delivery,) = [
            d
            for d in deliveries
            if d.attributes is not None and d.attributes["taskplane.sequence"] == event["sequence"]
        ]
        assert delivery.kind is SpanKind.CONSUMER
        assert _parent_id(delivery) == int(span_hex, 16)
        assert [link.context.span_id for link in delivery.links] == [_span_id(get)]

    # Logs: the API's lines carry the request id; the workflow's and the activities'
    # carry the task's ids (and the span they ran in).
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    access = [
        line for line in lines if line["message"] == "request" and line.get("route") == "/tasks"
    ]
    assert access
    assert access[0]["request_id"] == "trace-test-1"
    assert any(line.get("request_id") == generated_id for line in lines)
    workflow_lines = {
        line["message"]: line for line in lines if line["logger"] == "temporalio.workflow"
    }
    for message in ("task started", "task completed"):
        line = workflow_lines[message]
        assert line["task_id"] == task_id
        assert line["workflow_id"] == f"task-{task_id}"
        assert line["run_id"]
    recorded = [line for line in lines if line["message"] == "event recorded"]
    assert len(recorded) == len(delivered)
    for line in recorded:
        assert line["task_id"] == task_id
        assert line["workflow_id"] == f"task-{task_id}"
        assert line["activity_type"] in {"record_event", "demo_step"}
        assert int(line["trace_id"], 16) == trace_id
