"""Run one task the way a client does: created through the real API, run by a worker
with the test's recorder, watched over SSE to the end of its stream."""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import httpx

from activities.recorder import EventRecorder
from settings import Settings
from temporal.client import connect_client
from tests.integration.live_api import LiveApi, live_api
from tests.sse import collect_events, payload
from worker.temporal_worker import build_worker


@dataclass(frozen=True)
class Servers:
    database_url: str
    redis_url: str
    temporal_address: str

    def api(self, **settings: Any) -> AbstractAsyncContextManager[LiveApi]:
        """`live_api` on these servers."""
        return live_api(
            database_url=self.database_url,
            redis_url=self.redis_url,
            temporal_address=self.temporal_address,
            **settings,
        )


async def run_to_the_end(
    recorder: EventRecorder, servers: Servers, task_type: str, task_input: dict[str, Any]
) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """Create the task through the API, run it on a worker with `recorder`; returns the
    task id, what its SSE stream delivered (to its end) and its history."""
    queue = f"api-run-{uuid.uuid4().hex[:8]}"
    client = await connect_client(Settings(temporal_address=servers.temporal_address))
    async with (
        servers.api(task_queue=queue) as api,
        build_worker(client, recorder, task_queue=queue),
        httpx.AsyncClient(base_url=api.url, timeout=60) as http,
    ):
        created = await http.post("/tasks", json={"type": task_type, "input": task_input})
        assert created.status_code == 202, created.text
        task_id = created.json()["task_id"]
        status, frames = await collect_events(http, f"/tasks/{task_id}/events?snapshot=false")
        assert status == 200
        history = (await http.get(f"/tasks/{task_id}/history", params={"limit": 1000})).json()
    return task_id, [payload(f) for f in frames], history["events"]
