"""A proxy's read timeout against the stream heartbeat, on real processes and nginx.

With the heartbeat at 1 s, an idle stream (a task waiting for its input) lives through
nginx with a read timeout of 3 s for as long as it stays idle, then ends normally; the
same stream through nginx with a read timeout below the heartbeat (0.5 s) is cut: why
docs/scaling.md and deploy/nginx/taskplane.conf keep the timeout above the heartbeat.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.nginx import NginxProxy
from tests.nginx import ManyProcesses, many_processes
from tests.polling import until
from tests.sse import read_frames

pytestmark = pytest.mark.e2e

HEARTBEAT = 1.0
IDLE_PINGS = 6  # twice the longer read timeout


@pytest.fixture(scope="module")
def stack(services: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManyProcesses]:
    log_dir = tmp_path_factory.mktemp("e2e-proxy-timeouts")
    with many_processes(
        services, log_dir, apis=1, workers=1, sse_heartbeat_seconds=str(HEARTBEAT)
    ) as processes:
        yield processes


@asynccontextmanager
async def proxy(stack: ManyProcesses, folder: Path, read_timeout: float) -> AsyncIterator[str]:
    nginx = NginxProxy(
        folder,
        [("127.0.0.1", api.port) for api in stack.apis],
        read_timeout_seconds=read_timeout,
        log_path=folder / "nginx.log",
    )
    nginx.start()
    try:
        yield nginx.url
    finally:
        nginx.stop()


async def waiting_task(http: httpx.AsyncClient) -> str:
    created = await http.post(
        "/tasks", json={"type": "demo.approval", "input": {"step_seconds": 0}}
    )
    assert created.status_code == 202, created.text
    task_id: str = created.json()["task_id"]

    async def waiting() -> bool:
        return bool((await http.get(f"/tasks/{task_id}")).json()["status"] == "waiting")

    await until(waiting, within=30, what="the task to wait for its input")
    return task_id


async def test_an_idle_stream_lives_through_a_read_timeout_above_the_heartbeat(
    stack: ManyProcesses, tmp_path: Path
) -> None:
    async with (
        proxy(stack, tmp_path / "nginx", read_timeout=3 * HEARTBEAT) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        task_id = await waiting_task(http)
        pings = 0
        events: list[str] = []
        async with http.stream("GET", f"/tasks/{task_id}/events", timeout=60) as stream:
            assert stream.status_code == 200
            async for frame in read_frames(stream):
                if frame.is_event:
                    events.append(frame.event or "")
                    continue
                pings += 1
                if pings == IDLE_PINGS:  # idle for twice the proxy's read timeout: answer
                    answer = await http.post(
                        f"/tasks/{task_id}/inputs/approve", json={"approved": True}
                    )
                    assert answer.status_code == 202, answer.text
    assert pings >= IDLE_PINGS
    assert events[-1] == "task.completed.v1", events


async def test_a_read_timeout_below_the_heartbeat_cuts_the_idle_stream(
    stack: ManyProcesses, tmp_path: Path
) -> None:
    async with (
        proxy(stack, tmp_path / "nginx", read_timeout=HEARTBEAT / 2) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        task_id = await waiting_task(http)
        events: list[str] = []
        with pytest.raises(httpx.RemoteProtocolError):  # nginx gave up on the quiet API
            await read_until_cut(http, task_id, events)
        assert "task.input.requested.v1" in events  # it was cut while waiting, not before
        answer = await http.post(f"/tasks/{task_id}/inputs/approve", json={"approved": True})
        assert answer.status_code == 202, answer.text


async def read_until_cut(http: httpx.AsyncClient, task_id: str, events: list[str]) -> None:
    async with http.stream("GET", f"/tasks/{task_id}/events", timeout=60) as stream:
        assert stream.status_code == 200
        async for frame in read_frames(stream):
            if frame.is_event:
                events.append(frame.event or "")
