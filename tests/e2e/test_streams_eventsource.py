"""A browser's `EventSource` is a first-class client, API restarts included.

`EventSourceMimic` (tests/sse_wire.py) follows the WHATWG processing model:
same URL every time (its `?after=0` included: `Last-Event-ID` must win),
`Last-Event-ID` from the last dispatched event, `retry:` as the delay,
reconnect on end of stream or network error, stop on a 204. The API process
is killed with SIGKILL mid-stream and started again on the same port.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ProcessStack
from tests.e2e.streams_support import api_processes
from tests.polling import until
from tests.sse_wire import EventSourceMimic

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


async def test_eventsource_resumes_after_the_api_process_is_killed_and_restarted(
    stack: ProcessStack, services: Any, tmp_path: Path
) -> None:
    queue = stack.env["TASKPLANE_TASK_QUEUE"]
    with api_processes(services, tmp_path, queue, {"sse_retry_ms": "300"}) as (api,):
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
            created = await http.post(
                "/tasks",
                json={
                    "type": "demo.pipeline",
                    "input": {"steps": 3, "step_seconds": 1.5, "progress_ticks": 5},
                },
            )
            task_id = created.json()["task_id"]
            source = EventSourceMimic(f"{api.base_url}/tasks/{task_id}/events?after=0")
            running = asyncio.create_task(source.run())

            await until(lambda: len(source.events) >= 5, within=30, what="five events")
            api.stop("api", kill=True)  # SIGKILL: no goodbye to the client
            killed_after = len(source.events)
            tried = len(source.attempts)
            # EventSource keeps retrying against the closed port: a second attempt since
            # the kill means the first one is over, refused (no status: a network error).
            await until(lambda: len(source.attempts) >= tried + 2, within=30, what="retries")
            assert source.attempts[tried].status is None
            api.start("api")  # the same port
            await asyncio.to_thread(api.wait_ready)

            await asyncio.wait_for(running, 60)
        # A fresh connection: the pooled one sat idle past uvicorn's 5 s keep-alive, and
        # reusing it races the server closing it ("Server disconnected").
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
            stored = (await http.get(f"/tasks/{task_id}/history", params={"limit": 1000})).json()

    assert source.closed  # stopped by the 204, not by giving up
    ids = [int(event.last_event_id) for event in source.events]
    assert ids == [e["sequence"] for e in stored["events"]]  # each once, in order, none lost
    assert [e.type for e in source.events] == [e["type"] for e in stored["events"]]
    assert source.events[-1].type == "task.completed.v1"
    assert killed_after < len(source.events)  # the restart did interrupt it mid-stream
    assert source.reconnection_ms == 300  # the server's `retry:` was honoured

    first, *again = source.attempts
    assert (first.last_event_id, first.status) == (None, 200)
    for attempt in again:  # every reconnection resumes exactly after what was dispatched
        assert attempt.last_event_id == source.events[attempt.events_before - 1].last_event_id
    assert any(attempt.status is None for attempt in again)  # refused while the API was down
    assert again[-1].status == 204
