"""`GET /tasks/{id}/events`: the task's events over Server-Sent Events.

`api.sse_response.TaskEventResponse` frames the events, sends the `: ping`
comments and watches `receive()` for `http.disconnect`, so a vanished client
releases its subscription at once instead of at its next write; all in the one
task that serves the request (docs/performance.md).

Hygiene, per process: at most `sse_max_streams` streams (past it, 503 with
`Retry-After`); a client that takes no bytes for `sse_send_timeout_seconds` is
dropped; a stream idle for `sse_idle_timeout_seconds` ends (the client resumes
with `Last-Event-ID`). The first frame is `retry: <sse_retry_ms>`, which sets
how long a browser's `EventSource` waits before it reconnects.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from api.auth import StreamTenantDep
from api.deps import ServicesDep
from api.event_versions import VersionQuery
from api.limits import MAX_SEQUENCE, TenantStreamGate, TenantStreamsDep, parse_sequence
from api.lookup import find_task, parse_task_id
from api.problems import PROBLEM_JSON, ProblemError, problem_body
from api.services import Services
from api.snapshot import current_snapshot, snapshot_bytes
from api.sse_client import SseClient
from api.sse_contract import SSE_RESPONSES
from api.sse_response import EventStreamResponse, TaskEventResponse
from api.store_retry import read_patiently
from api.stream_events import OutgoingEvent
from api.stream_gate import StreamCounters, StreamGate
from api.streaming import TaskEventStream

log = logging.getLogger(__name__)
router = APIRouter(tags=["events"])

# How long a client refused at the stream cap should wait before it tries again.
RETRY_AFTER_SECONDS = 5


async def get_stream_gate(request: Request) -> StreamGate:
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


def _admission(
    gate: StreamGate, tenant_gate: TenantStreamGate, tenant: str
) -> Callable[[Scope, Receive, Send], Awaitable[Callable[[], None] | None]]:
    """Takes one slot of the stream cap (and one of the tenant's) when the ASGI server
    runs the response, and gives back what releases them, whatever ends the stream: the
    last event, a disconnect (even one before the first byte), a send timeout, a shutdown.
    A refusal is answered here (503 / 429) and gives None."""

    async def admit(scope: Scope, receive: Receive, send: Send) -> Callable[[], None] | None:
        if not gate.try_acquire():
            await too_many_streams(gate, scope["path"])(scope, receive, send)
            return None
        if not tenant_gate.try_acquire(tenant):
            gate.release()
            refusal = tenant_gate.refusal(tenant)
            await _problem_response(refusal, scope["path"])(scope, receive, send)
            return None

        def release() -> None:
            tenant_gate.release(tenant)
            gate.release()

        return release

    return admit


def _problem_response(problem: ProblemError, path: str) -> JSONResponse:
    body = problem_body(problem.status, problem.detail, instance=path)
    return JSONResponse(
        body, status_code=problem.status, media_type=PROBLEM_JSON, headers=problem.headers
    )


def _resume_point(last_event_id: str | None, after: int | None) -> int:
    """`Last-Event-ID` wins over `?after`: a browser reconnects with both."""
    if last_event_id is not None and last_event_id.strip():
        return parse_sequence(last_event_id, "Last-Event-ID")
    return after or 0


@router.get(
    "/tasks/{task_id}/events",
    response_class=EventStreamResponse,
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
    source = _StreamSource(
        task_id,
        tenant,
        resume_after,
        history,
        services,
        gate.counters,
        request.app.state.api.metrics.count_error,
    )
    settings = services.settings
    ticker = request.app.state.stream_ticker  # nothing below holds the `request`
    return TaskEventResponse(
        source.body,
        opening=_opening(settings.sse_retry_ms),
        first_frames=source.first_frames if snapshot else None,
        version=version,
        ticker=ticker,
        admit=_admission(gate, tenant_gate, tenant),
        on_error=source.on_error,
        on_send_timeout=source.on_send_timeout,
    )


@functools.cache
def _opening(retry_ms: int) -> bytes:
    """`retry:` (EventSource's reconnection delay): one bytes object per process."""
    return f"retry: {retry_ms}\n\n".encode() if retry_ms else b""


class _StreamSource:
    """One stream's events, snapshot and error reporting, for the stream's whole life.

    One slotted object whose bound methods the response calls: thousands of idle streams
    per process, and closures over the route's locals cost ~1 KiB more each (a function,
    its closure tuple and a cell per variable, for every callback).
    """

    __slots__ = (
        "_after",
        "_count_error",
        "_counters",
        "_history",
        "_services",
        "_task_id",
        "_tenant",
    )

    def __init__(
        self,
        task_id: str,
        tenant: str,
        after: int,
        history: bool,
        services: Services,
        counters: StreamCounters,
        count_error: Callable[[str, str], None],
    ) -> None:
        self._task_id = task_id
        self._tenant = tenant
        self._after = after
        self._history = history
        self._services = services
        self._counters = counters
        self._count_error = count_error

    def body(self, waiter: SseClient) -> AsyncGenerator[list[OutgoingEvent], None]:
        settings = self._services.settings
        return TaskEventStream(
            self._task_id,
            after=self._after,
            history=self._history,
            store=self._services.events,
            broker=self._services.broker,
            queue_size=settings.sse_client_queue_size,
            page_size=settings.sse_history_page_size,
            idle_timeout=settings.sse_idle_timeout_seconds,
            poll_interval=settings.sse_store_poll_seconds,
            counters=self._counters,
            waiter=waiter,
        ).batches()

    async def first_frames(self) -> bytes:
        """The snapshot: the task's state at once, before its events (api/snapshot.py)."""
        services, task_id, tenant, counters = (
            self._services,
            self._task_id,
            self._tenant,
            self._counters,
        )

        def retrying(exc: Exception) -> None:
            counters.store_retries += 1
            log.warning("snapshot read failed; reading again", extra={"task_id": task_id})

        # Hundreds of streams opening at once may find no pooled connection in time:
        # waited out as the stream's own store reads are, not an `event: error`.
        state = await read_patiently(
            lambda: current_snapshot(services, task_id, tenant),
            deadline=asyncio.get_running_loop().time() + services.settings.sse_idle_timeout_seconds,
            pause=asyncio.sleep,
            on_retry=retrying,
        )
        return snapshot_bytes(state)

    def on_error(self, exc: Exception) -> dict[str, object]:
        log.error("stream failed", exc_info=exc, extra={"task_id": self._task_id})
        self._counters.stream_errors += 1
        self._count_error("sse", type(exc).__name__)
        return problem_body(503, f"the stream failed: {type(exc).__name__}")

    def on_send_timeout(self) -> None:
        self._counters.send_timeouts += 1
        log.info("client stopped reading; stream dropped", extra={"task_id": self._task_id})
