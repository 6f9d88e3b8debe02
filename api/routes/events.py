"""`GET /tasks/{id}/events`: the task's events over Server-Sent Events.

sse-starlette frames the events, sends the `: ping` comments and, crucially,
watches `receive()` for `http.disconnect`, so a vanished client releases its
subscription at once instead of at its next write.

Hygiene, per process: at most `sse_max_streams` streams (past it, 503 with
`Retry-After`); a client that takes no bytes for `sse_send_timeout_seconds` is
dropped; a stream idle for `sse_idle_timeout_seconds` ends (the client resumes
with `Last-Event-ID`). The first frame is `retry: <sse_retry_ms>`, which sets
how long a browser's `EventSource` waits before it reconnects.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from api.auth import StreamTenantDep
from api.deps import ServicesDep
from api.event_versions import VersionQuery, as_requested
from api.limits import MAX_SEQUENCE, TenantStreamGate, TenantStreamsDep, parse_sequence
from api.lookup import find_task, parse_task_id
from api.problems import PROBLEM_JSON, ProblemError, problem_body
from api.snapshot import current_snapshot, snapshot_frame
from api.sse_contract import SSE_RESPONSES
from api.stream_gate import StreamGate
from api.streaming import OutgoingEvent, TaskEventStream
from telemetry.tracing import event_span

log = logging.getLogger(__name__)
router = APIRouter(tags=["events"])

# How long a client refused at the stream cap should wait before it tries again.
RETRY_AFTER_SECONDS = 5


def get_stream_gate(request: Request) -> StreamGate:
    gate: StreamGate = request.app.state.stream_gate
    return gate


StreamGateDep = Annotated[StreamGate, Depends(get_stream_gate)]


def too_many_streams(gate: StreamGate, path: str) -> JSONResponse:
    gate.counters.rejected += 1
    body = problem_body(
        503,
        f"this API process already serves its maximum of {gate.limit} streams; try again",
        instance=path,
    )
    return JSONResponse(
        body,
        status_code=503,
        media_type=PROBLEM_JSON,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


class TaskEventResponse(EventSourceResponse):
    """An `EventSourceResponse` that holds one slot of the stream cap (and one of its
    tenant's) for exactly its lifetime.

    The slot is taken when the ASGI server runs the response and given back in
    `finally`, whatever ends it: the last event, a disconnect (even one before
    the first byte, when the body never starts), a send timeout, a shutdown.
    A generator's own `finally` would not do: a body iterator that never
    started never runs it.
    """

    def __init__(
        self,
        content: AsyncIterator[ServerSentEvent],
        *,
        gate: StreamGate,
        tenant_gate: TenantStreamGate,
        tenant: str,
        task_id: str,
        **options: Any,
    ) -> None:
        super().__init__(content, **options)
        self.__gate = gate
        self.__tenant_gate = tenant_gate
        self.__tenant = tenant
        self.__task_id = task_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.__gate.try_acquire():
            await too_many_streams(self.__gate, scope["path"])(scope, receive, send)
            return
        if not self.__tenant_gate.try_acquire(self.__tenant):
            self.__gate.release()
            refusal = self.__tenant_gate.refusal(self.__tenant)
            await _problem_response(refusal, scope["path"])(scope, receive, send)
            return
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            self.__gate.counters.send_timeouts += 1
            log.info("client stopped reading; stream dropped", extra={"task_id": self.__task_id})
        finally:
            self.__tenant_gate.release(self.__tenant)
            self.__gate.release()


def _problem_response(problem: ProblemError, path: str) -> JSONResponse:
    body = problem_body(problem.status, problem.detail, instance=path)
    return JSONResponse(
        body, status_code=problem.status, media_type=PROBLEM_JSON, headers=problem.headers
    )


def _span_fields(event: OutgoingEvent) -> dict[str, str | int]:
    return {"taskplane.event_type": event.event_type, "taskplane.sequence": event.sequence}


def _resume_point(last_event_id: str | None, after: int | None) -> int:
    """`Last-Event-ID` wins over `?after`: a browser reconnects with both."""
    if last_event_id is not None and last_event_id.strip():
        return parse_sequence(last_event_id, "Last-Event-ID")
    return after or 0


@router.get(
    "/tasks/{task_id}/events",
    response_class=EventSourceResponse,
    responses={
        **SSE_RESPONSES,
        503: {
            "description": "This API process serves its maximum of streams, or Postgres,"
            " Redis or Temporal failed before the stream began (`component` says which):"
            " retry after `Retry-After` seconds (or on another process). Once the stream"
            " has begun, a failure arrives as an `event: error` frame instead.",
            "content": {PROBLEM_JSON: {}},
        },
        429: {
            "description": "The tenant has its maximum of open streams on this process"
            " (`TASKPLANE_LIMIT_STREAMS_PER_TENANT`): retry after `Retry-After` seconds.",
            "content": {PROBLEM_JSON: {}},
        },
    },
)
async def task_events(
    task_id: str,
    request: Request,
    services: ServicesDep,
    gate: StreamGateDep,
    tenant_gate: TenantStreamsDep,
    tenant: StreamTenantDep,
    after: Annotated[int | None, Query(ge=0, le=MAX_SEQUENCE)] = None,
    history: bool = True,
    snapshot: bool = True,
    last_event_id: Annotated[str | None, Header()] = None,
    version: VersionQuery = "latest",
) -> Response:
    """Follow a task: its events as Server-Sent Events, history first, then live, until
    the task's terminal event. Reconnect with `Last-Event-ID` (or `?after=`) to resume;
    204 means the task ended and you have everything (docs/events.md, "End of a stream").
    Browsers authenticate with `?token=` from `POST /tasks/{task_id}/stream-token`.
    The first frame is `event: snapshot` (the task's current state, no `id`) unless
    `?snapshot=false`."""
    if gate.full:  # before any store or Temporal work; the response takes the slot itself
        return too_many_streams(gate, request.url.path)
    if tenant_gate.full(tenant):
        raise tenant_gate.refusal(tenant)
    task_id = parse_task_id(task_id)
    resume_after = _resume_point(last_event_id, after)
    view = await find_task(services, task_id, tenant)
    if view.status.terminal:
        last_sequence = await services.events.last_sequence(task_id) or 0
        if resume_after >= last_sequence or not history:
            return Response(status_code=204)
    settings = services.settings
    stream = TaskEventStream(
        task_id,
        after=resume_after,
        history=history,
        store=services.events,
        broker=services.broker,
        queue_size=settings.sse_client_queue_size,
        page_size=settings.sse_history_page_size,
        idle_timeout=settings.sse_idle_timeout_seconds,
        poll_interval=settings.sse_store_poll_seconds,
        counters=gate.counters,
    )

    async def frames() -> AsyncIterator[ServerSentEvent]:
        if settings.sse_retry_ms:
            yield ServerSentEvent(retry=settings.sse_retry_ms)
        try:
            if snapshot:  # the task's state at once, before its events (api/snapshot.py)
                yield snapshot_frame(await current_snapshot(services, task_id, tenant))
            async with aclosing(stream.events()) as events:
                async for event in events:
                    with event_span("sse deliver", event.envelope_json, _span_fields(event)):
                        event_type, data = as_requested(
                            event.envelope_json, event.event_type, version
                        )
                        yield ServerSentEvent(data=data, event=event_type, id=str(event.sequence))
        except Exception as exc:
            # The response has started: the error can only travel inside the stream.
            log.exception("stream failed", extra={"task_id": task_id})
            gate.counters.stream_errors += 1
            request.app.state.api.metrics.count_error("sse", type(exc).__name__)
            problem = problem_body(503, f"the stream failed: {type(exc).__name__}")
            yield ServerSentEvent(data=json.dumps(problem), event="error")

    return TaskEventResponse(
        frames(),
        gate=gate,
        tenant_gate=tenant_gate,
        tenant=tenant,
        task_id=task_id,
        ping=settings.sse_heartbeat_seconds,
        ping_message_factory=lambda: ServerSentEvent(comment="ping"),
        send_timeout=settings.sse_send_timeout_seconds,
        sep="\n",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
