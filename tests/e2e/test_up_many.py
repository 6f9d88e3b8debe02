"""`taskplane up --apis 2 --workers 2` as a user runs it: a subprocess, until SIGINT.

On the session's servers (given by their URLs, as `taskplane up` allows), so only the
application processes and nginx are started: it must get ready on the configured API
address (nginx's), serve a task end to end through the proxy, and on SIGINT stop the
proxy, both APIs and both workers and exit 0, leaving nothing listening.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.ports import free_port, port_in_use
from tests.nginx import nginx_or_skip
from tests.polling import until
from tests.sse import collect_events, payload

pytestmark = pytest.mark.e2e


async def test_up_with_two_apis_and_two_workers_serves_a_task_and_stops_cleanly(
    services: Any, tmp_path: Path
) -> None:
    nginx_or_skip()
    port = free_port()
    env = {
        **os.environ,
        "TASKPLANE_DATABASE_URL": services.database_url,
        "TASKPLANE_REDIS_URL": services.redis_url,
        "TASKPLANE_TEMPORAL_ADDRESS": services.temporal_address,
        "TASKPLANE_STATE_DIR": str(tmp_path / "state"),
        "TASKPLANE_API_PORT": str(port),
        "TASKPLANE_TASK_QUEUE": f"e2e-up-{uuid.uuid4().hex[:8]}",
        "TASKPLANE_WORKER_METRICS_PORT": "0",  # free ports, never a running stack's
        "TASKPLANE_WORKER_METRICS_TEMPORAL_PORT": "0",
    }
    output = tmp_path / "up.out"
    with output.open("wb") as out:
        up = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "cli.main", "up", "--apis", "2", "--workers", "2"),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"

        async def ready() -> bool:
            assert up.returncode is None, output.read_text()
            try:
                async with httpx.AsyncClient(timeout=2) as http:
                    return (await http.get(f"{url}/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        await until(ready, within=90, what="`taskplane up` to be ready")
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            created = await http.post(
                "/tasks", json={"type": "demo.pipeline", "input": {"steps": 2, "step_seconds": 0}}
            )
            assert created.status_code == 202, created.text
            task_id = created.json()["task_id"]
            status, frames = await collect_events(http, f"/tasks/{task_id}/events")
        assert status == 200
        events = [payload(frame) for frame in frames]
        assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
        assert events[-1]["type"] == "task.completed.v1"
        up.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(up.wait(), timeout=60) == 0, output.read_text()
    finally:
        if up.returncode is None:
            up.kill()
            await up.wait()
    text = output.read_text()
    for name in ("nginx", "api-1", "api-2", "worker", "worker-2"):
        assert f"stopped {name} in" in text, text
    assert (tmp_path / "state" / "nginx" / "nginx.conf").exists()
    assert not port_in_use(port), "something still listens on the API address"
