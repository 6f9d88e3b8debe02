"""`demo.fanout`: parallel steps under a concurrency limit, then a fan-in."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from schemas.registry import is_terminal
from tests.e2e.operator_cli import wait_status
from tests.sse import collect_events, payload

pytestmark = pytest.mark.e2e


async def run(
    client: httpx.AsyncClient, task_input: dict[str, Any]
) -> tuple[str, list[dict[str, Any]]]:
    response = await client.post("/tasks", json={"type": "demo.fanout", "input": task_input})
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    _, frames = await collect_events(client, f"/tasks/{task_id}/events")
    events = [payload(f) for f in frames]
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert sum(is_terminal(e["type"]) for e in events) == 1
    assert is_terminal(events[-1]["type"])
    return task_id, events


def max_running(events: list[dict[str, Any]]) -> int:
    running, peak = set(), 0
    for event in events:
        if event["type"] == "task.step.started.v1":
            running.add(event["data"]["index"])
        elif event["type"] in {"task.step.completed.v1", "task.step.failed.v1"}:
            running.discard(event["data"]["index"])
        peak = max(peak, len(running))
    return peak


async def test_branches_run_in_parallel_within_the_limit(client: httpx.AsyncClient) -> None:
    task_id, events = await run(
        client, {"branches": 6, "max_parallel": 3, "step_seconds": 0.4, "progress_ticks": 2}
    )
    assert events[-1]["type"] == "task.completed.v1"
    completed = sorted(e["data"]["index"] for e in events if e["type"] == "task.step.completed.v1")
    assert completed == [1, 2, 3, 4, 5, 6]
    assert 2 <= max_running(events) <= 3  # parallel, and never past the limit
    assert len(events[-1]["data"]["result"]["outputs"]) == 6
    task = (await client.get(f"/tasks/{task_id}")).json()
    assert (task["status"], task["progress"], task["type"]) == ("completed", 100.0, "demo.fanout")


async def test_a_failing_branch_cancels_the_others_and_fails_the_task(
    client: httpx.AsyncClient,
) -> None:
    _, events = await run(
        client, {"branches": 6, "max_parallel": 2, "step_seconds": 1, "fail_at_branch": 2}
    )
    assert events[-1]["type"] == "task.failed.v1"
    assert events[-1]["data"]["step"] == 2
    started = {e["data"]["index"] for e in events if e["type"] == "task.step.started.v1"}
    assert started <= {1, 2, 3}  # after the failure no further branch begins


async def test_pause_takes_effect_once_across_parallel_branches(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/tasks",
        json={
            "type": "demo.fanout",
            "input": {"branches": 6, "max_parallel": 2, "step_seconds": 0.5},
        },
    )
    task_id = response.json()["task_id"]
    await wait_status(client, task_id, "running")
    assert (await client.post(f"/tasks/{task_id}/pause")).status_code == 202
    await wait_status(client, task_id, "paused")
    assert (await client.post(f"/tasks/{task_id}/resume")).status_code == 202
    _, frames = await collect_events(client, f"/tasks/{task_id}/events")
    types = [f.event for f in frames]
    assert types.count("task.paused.v1") == 1
    assert types.count("task.resumed.v1") == 1
    assert types[-1] == "task.completed.v1"
