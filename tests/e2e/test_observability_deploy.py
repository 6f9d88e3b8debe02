"""The running processes export every metric the alert rules and the dashboard use.

Scrapes a real stack (`python -m api`, `python -m worker`) after a task ran, on
the three endpoints Prometheus scrapes in docker-compose.yml: the API's
`/metrics`, the worker's own port and the Temporal SDK's port of the worker. The
worker runs a durable handler (tests/e2e/effect_handler.py, as an operator's
`TASKPLANE_EVENT_HANDLERS` would name one): the handler and consumer-group metrics
the alerts use exist only where a handler runs, and the worker runs none by default.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql
from redis import Redis

from tests.deploy_files import (
    ONLY_ON_REDIS_7,
    PROMETHEUS_OWN,
    exported_names,
    referenced_metrics,
)
from tests.e2e.conftest import ProcessStack, running_stack

pytestmark = pytest.mark.e2e


@pytest.fixture
def handler_stack(services: Any, tmp_path: Path) -> Iterator[ProcessStack]:
    table = f"e2e_effects_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(services.database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {} (event_id text NOT NULL, task_id text NOT NULL)").format(
                sql.Identifier(table)
            )
        )
    group = f"test-effects-{table}"
    with running_stack(
        services,
        tmp_path,
        event_handlers="tests.e2e.effect_handler:handler",
        test_effect_table=table,
        test_effect_group=group,
    ) as processes:
        # The group starts at the stream's end: the task must come after it exists.
        with Redis.from_url(services.redis_url, decode_responses=True) as admin:
            deadline = time.monotonic() + 30
            while not any(g["name"] == group for g in groups(admin)):
                assert time.monotonic() < deadline, processes.log_tail("worker")
                time.sleep(0.1)
        yield processes


def groups(admin: Redis) -> list[dict[str, Any]]:
    if not admin.exists("taskplane:events"):
        return []
    found: list[dict[str, Any]] = admin.xinfo_groups("taskplane:events")
    return found


def redis_major(url: str) -> int:
    with Redis.from_url(url) as client:
        info: dict[str, Any] = client.info("server")
    return int(str(info["redis_version"]).split(".")[0])


async def test_alerts_and_dashboard_use_only_exported_metrics(
    handler_stack: ProcessStack, redis_url: str
) -> None:
    stack = handler_stack
    # What Redis 6.2 (the embedded server) cannot report, the worker does not export there.
    unreportable = ONLY_ON_REDIS_7 if redis_major(redis_url) < 7 else frozenset()
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
