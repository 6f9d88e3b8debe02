"""The running processes export every metric the alert rules and the dashboard use.

Scrapes a real stack (`python -m api`, `python -m worker`) after a task ran, on
the three endpoints Prometheus scrapes in docker-compose.yml: the API's
`/metrics`, the worker's own port and the Temporal SDK's port of the worker.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from redis.asyncio import Redis

from tests.deploy_files import (
    ONLY_ON_REDIS_7,
    PROMETHEUS_OWN,
    exported_names,
    referenced_metrics,
)
from tests.e2e.conftest import ProcessStack

pytestmark = pytest.mark.e2e


async def redis_major(url: str) -> int:
    client = Redis.from_url(url)
    try:
        info = await client.info("server")
    finally:
        await client.aclose()
    return int(str(info["redis_version"]).split(".")[0])


async def test_alerts_and_dashboard_use_only_exported_metrics(
    stack: ProcessStack, redis_url: str
) -> None:
    # What Redis 6.2 (the embedded server) cannot report, the worker does not export there.
    unreportable = ONLY_ON_REDIS_7 if await redis_major(redis_url) < 7 else frozenset()
    endpoints = {
        "api": f"{stack.base_url}/metrics",
        "worker": f"http://127.0.0.1:{stack.worker_metrics_port}/metrics",
        "temporal-sdk": f"http://127.0.0.1:{stack.worker_temporal_metrics_port}/metrics",
    }
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        # One task end to end, so every histogram has had an observation.
        created = await http.post(
            "/tasks",
            json={"type": "demo.pipeline", "input": {"steps": 1, "step_seconds": 0.1}},
            headers={"X-Request-ID": "deploy-check"},
        )
        assert created.headers["X-Request-ID"] == "deploy-check"
        task_id = created.json()["task_id"]
        # The stream ends after the terminal event: reading it waits for the task.
        async with http.stream("GET", f"/tasks/{task_id}/events") as events:
            body = "".join([chunk async for chunk in events.aiter_text()])
        assert "event: task.completed.v1" in body
        used = referenced_metrics()
        exported: dict[str, set[str]] = {}
        deadline = time.monotonic() + 20
        while True:
            for name, url in endpoints.items():
                response = await http.get(url)
                assert response.status_code == 200, name
                exported[name] = exported_names(response.text)
            everything = set().union(*exported.values()) | PROMETHEUS_OWN | unreportable
            missing = {n: where for n, where in used.items() if n not in everything}
            # Some series appear only after their first observation: retry a little.
            if not missing or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    assert not missing, missing
    # Each endpoint serves its own family, so each Prometheus job finds what it expects.
    assert "taskplane_sse_streams_open" in exported["api"]
    assert "taskplane_tasks" in exported["worker"]
    assert "taskplane_event_publish_seconds_bucket" in exported["worker"]
    assert "temporal_workflow_task_schedule_to_start_latency_bucket" in exported["temporal-sdk"]
