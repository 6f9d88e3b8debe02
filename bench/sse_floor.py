"""`python -m bench.sse_floor`: the memory floor under Taskplane's SSE streams.

Two minimal servers on the same uvicorn settings as `python -m api` (uvloop
and httptools, picked automatically), each holding idle SSE streams that got
one event, so the capacity part can say how much of the API's memory per
stream is uvicorn's, how much sse-starlette's, and how much Taskplane's
(FastAPI routing, the task lookup, the broker subscription, the stream):

- `raw`: a plain ASGI callable that sends the headers and one event, then
  waits for `http.disconnect`;
- `sse_starlette`: a Starlette route returning sse-starlette's
  `EventSourceResponse` over a generator that yields one event and waits.

`TASKPLANE_API_PORT` picks the port, `TASKPLANE_BENCH_FLOOR` the kind.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

EVENT = b'id: 1\nevent: task.created.v1\ndata: {"sequence":1}\n\n'


async def raw_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/readyz":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": EVENT, "more_body": True})
    while (await receive())["type"] != "http.disconnect":
        pass


async def _one_event_then_idle() -> AsyncIterator[ServerSentEvent]:
    yield ServerSentEvent(data='{"sequence":1}', event="task.created.v1", id="1")
    await asyncio.Event().wait()


async def _events(request: Request) -> Response:
    return EventSourceResponse(_one_event_then_idle(), ping=15, sep="\n")


async def _ready(request: Request) -> Response:
    return PlainTextResponse("ok")


def sse_starlette_app() -> Starlette:
    return Starlette(routes=[Route("/readyz", _ready), Route("/tasks/{task_id}/events", _events)])


def main() -> None:
    kind = os.environ.get("TASKPLANE_BENCH_FLOOR", "raw")
    app: Any = raw_app if kind == "raw" else sse_starlette_app()
    port = int(os.environ["TASKPLANE_API_PORT"])
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, log_level="warning")


if __name__ == "__main__":
    main()
