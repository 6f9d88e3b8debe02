"""`GET /tasks/{id}/events`: the task's events over Server-Sent Events.

sse-starlette frames the events, sends the `: ping` comments and, crucially,
watches `receive()` for `http.disconnect`, so a vanished client releases its
subscription at once instead of at its next write.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.deps import ServicesDep
from api.lookup import find_task, parse_task_id
from api.problems import ProblemError, problem_body
from api.streaming import TaskEventStream

log = logging.getLogger(__name__)
router = APIRouter(tags=["events"])


def _resume_point(last_event_id: str | None, after: int | None) -> int:
    """`Last-Event-ID` wins over `?after`: a browser reconnects with both."""
    if last_event_id is not None and last_event_id.strip():
        try:
            value = int(last_event_id.strip())
        except ValueError:
            raise ProblemError(
                400, f"Last-Event-ID must be a sequence number, got {last_event_id!r}"
            ) from None
        if value < 0:
            raise ProblemError(400, "Last-Event-ID must not be negative")
        return value
    return after or 0


@router.get(
    "/tasks/{task_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The task's events as SSE."},
        204: {"description": "The task ended and the client has every event: stop reconnecting."},
        404: {"description": "No such task."},
    },
)
async def task_events(
    task_id: str,
    services: ServicesDep,
    after: Annotated[int | None, Query(ge=0)] = None,
    history: bool = True,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    task_id = parse_task_id(task_id)
    resume_after = _resume_point(last_event_id, after)
    view = await find_task(services, task_id)
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
    )

    async def frames() -> AsyncIterator[ServerSentEvent]:
        try:
            async for event in stream.events():
                yield ServerSentEvent(
                    data=event.envelope_json, event=event.event_type, id=str(event.sequence)
                )
        except Exception as exc:
            # The response has started: the error can only travel inside the stream.
            log.exception("stream failed", extra={"task_id": task_id})
            problem = problem_body(503, f"the stream failed: {type(exc).__name__}")
            yield ServerSentEvent(data=json.dumps(problem), event="error")

    return EventSourceResponse(
        frames(),
        ping=settings.sse_heartbeat_seconds,
        ping_message_factory=lambda: ServerSentEvent(comment="ping"),
        sep="\n",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
