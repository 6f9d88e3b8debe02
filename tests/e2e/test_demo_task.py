"""One demo task's whole path on real servers: REST → Temporal → Postgres → Redis → SSE."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from schemas.registry import is_terminal
from tests.e2e.operator_cli import wait_status
from tests.polling import until
from tests.sse import Frame, collect_events, payload

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(both_workers_client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Every test here runs twice: with a caching worker and with a replaying one."""
    return both_workers_client


async def create(
    client: httpx.AsyncClient, task_input: dict[str, Any], **headers: str
) -> dict[str, Any]:
    response = await client.post(
        "/tasks", json={"type": "demo.pipeline", "input": task_input}, headers=headers
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_well_formed(frames: list[Frame], task_id: str, first: int = 1) -> None:
    """Dense sequences from `first`, ids = sequence, event = type, CloudEvents envelope."""
    assert [int(f.id or 0) for f in frames] == list(range(first, first + len(frames)))
    for frame in frames:
        envelope = payload(frame)
        assert envelope["sequence"] == int(frame.id or 0)
        assert envelope["type"] == frame.event
        assert envelope["subject"] == task_id
        assert envelope["specversion"] == "1.0"
        assert envelope["datacontenttype"] == "application/json"
        assert envelope["source"] == "/taskplane"
        assert envelope["time"].endswith("Z")
        assert envelope["id"]
    assert len({payload(f)["id"] for f in frames}) == len(frames)


async def test_demo_task_streams_every_event_in_order_then_resumes(
    client: httpx.AsyncClient,
) -> None:
    created = await create(client, {"steps": 3, "step_seconds": 0.2, "progress_ticks": 4})
    task_id = created["task_id"]
    assert created["workflow_id"] == f"task-{task_id}"
    assert created["links"]["events"] == f"/tasks/{task_id}/events"

    status, frames = await collect_events(client, f"/tasks/{task_id}/events")
    assert status == 200
    assert_well_formed(frames, task_id)
    types = [f.event for f in frames]
    per_step = ["task.step.started.v1"] + ["task.step.progress.v1"] * 4 + ["task.step.completed.v1"]
    assert types == ["task.created.v1", *per_step * 3, "task.completed.v1"]
    assert [payload(f)["data"]["index"] for f in frames[1:-1]] == [
        i for i in (1, 2, 3) for _ in range(6)
    ]

    # Resume: Last-Event-ID gets exactly the rest, byte for byte; it wins over ?after.
    status, rest = await collect_events(
        client, f"/tasks/{task_id}/events?after=2", headers={"Last-Event-ID": "7"}
    )
    assert status == 200
    assert [f.data for f in rest] == [f.data for f in frames[7:]]
    status, rest = await collect_events(client, f"/tasks/{task_id}/events?after=15")
    assert [f.data for f in rest] == [f.data for f in frames[15:]]

    # After the terminal event a reconnect is told to stop.
    last = frames[-1].id
    status, _ = await collect_events(
        client, f"/tasks/{task_id}/events", headers={"Last-Event-ID": str(last)}
    )
    assert status == 204

    task = (await client.get(f"/tasks/{task_id}")).json()
    assert task["status"] == "completed"
    assert task["progress"] == 100.0
    assert task["type"] == "demo.pipeline"
    assert task["result"]["steps"] == 3

    page = (await client.get(f"/tasks/{task_id}/history", params={"after": 0, "limit": 5})).json()
    assert [e["sequence"] for e in page["events"]] == [1, 2, 3, 4, 5]
    assert page["next_after"] == 5
    assert page["events"] == [payload(f) for f in frames[:5]]
    empty = (await client.get(f"/tasks/{task_id}/history", params={"after": 99})).json()
    assert empty == {"events": [], "next_after": 99}


async def test_live_only_stream_starts_at_now(client: httpx.AsyncClient) -> None:
    created = await create(client, {"steps": 2, "step_seconds": 0.6, "progress_ticks": 3})
    task_id = created["task_id"]

    async def some_happened() -> bool:  # a live-only stream must start after them
        page = (await client.get(f"/tasks/{task_id}/history")).json()
        return len(page["events"]) >= 2

    await until(some_happened, what="the task's first events")
    status, frames = await collect_events(client, f"/tasks/{task_id}/events?history=false")
    assert status == 200
    assert frames, "a live-only stream still delivers what happens next"
    assert payload(frames[0])["sequence"] > 1
    assert_well_formed(frames, task_id, first=int(frames[0].id or 0))
    assert frames[-1].event == "task.completed.v1"


async def test_failing_step_ends_with_task_failed(client: httpx.AsyncClient) -> None:
    created = await create(client, {"steps": 3, "step_seconds": 0.05, "fail_at_step": 2})
    task_id = created["task_id"]
    _, frames = await collect_events(client, f"/tasks/{task_id}/events")
    assert_well_formed(frames, task_id)
    types = [f.event for f in frames]
    assert types[-1] == "task.failed.v1"
    assert "task.completed.v1" not in types
    failed_step = next(payload(f)["data"] for f in frames if f.event == "task.step.failed.v1")
    assert failed_step["index"] == 2
    assert failed_step["will_retry"] is False
    assert payload(frames[-1])["data"]["step"] == 2
    task = (await client.get(f"/tasks/{task_id}")).json()
    assert task["status"] == "failed"
    assert "fail_at_step" in task["error"]


async def test_pause_resume_and_cancel_through_the_api(client: httpx.AsyncClient) -> None:
    created = await create(client, {"steps": 4, "step_seconds": 0.4})
    task_id = created["task_id"]
    await wait_status(client, task_id, "running")
    paused = await client.post(f"/tasks/{task_id}/pause")
    assert paused.status_code == 202, paused.text
    assert paused.json()["status"] == "paused"
    again = await client.post(f"/tasks/{task_id}/pause")
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"

    await wait_status(client, task_id, "paused")
    resumed = await client.post(f"/tasks/{task_id}/resume")
    assert resumed.status_code == 202
    assert (await client.post(f"/tasks/{task_id}/resume")).status_code == 409
    await wait_status(client, task_id, "running")
    assert (await client.post(f"/tasks/{task_id}/cancel")).status_code == 202

    _, frames = await collect_events(client, f"/tasks/{task_id}/events")
    assert_well_formed(frames, task_id)
    types = [f.type for f in frames]
    assert types.index("task.paused.v1") < types.index("task.resumed.v1")
    assert types[-1] == "task.cancelled.v1"
    assert sum(is_terminal(t) for t in types) == 1
    assert (await client.post(f"/tasks/{task_id}/cancel")).status_code == 409
    assert (await client.get(f"/tasks/{task_id}")).json()["status"] == "cancelled"


async def test_every_post_without_a_key_is_a_new_task(client: httpx.AsyncClient) -> None:
    body = {"steps": 1, "step_seconds": 0}
    no_key = [await create(client, body) for _ in range(2)]
    assert no_key[0]["task_id"] != no_key[1]["task_id"]


async def test_errors_are_problem_json(client: httpx.AsyncClient) -> None:
    unknown = str(uuid.uuid4())
    for path in (
        f"/tasks/{unknown}",
        f"/tasks/{unknown}/events",
        f"/tasks/{unknown}/history",
        "/tasks/nope",
    ):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 404
    bad_type = await client.post("/tasks", json={"type": "no.such.type", "input": {}})
    assert bad_type.status_code == 422
    assert "no.such.type" in bad_type.json()["detail"]
    bad_input = await client.post("/tasks", json={"type": "demo.pipeline", "input": {"steps": 0}})
    assert bad_input.status_code == 422
    assert bad_input.json()["errors"]
    not_json = await client.post(
        "/tasks", content=b"{", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422
    bad_resume = await client.get(f"/tasks/{unknown}/events", headers={"Last-Event-ID": "abc"})
    assert bad_resume.status_code == 400


async def test_list_tasks_and_health(client: httpx.AsyncClient) -> None:
    created = await create(client, {"steps": 1, "step_seconds": 0})
    await collect_events(client, f"/tasks/{created['task_id']}/events")
    page = (
        await client.get(
            "/tasks", params={"type": "demo.pipeline", "status": "completed", "limit": 500}
        )
    ).json()
    assert created["task_id"] in {t["task_id"] for t in page["tasks"]}
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = (await client.get("/readyz")).json()
    assert ready["status"] == "ready"
    assert set(ready["checks"]) == {"postgres", "redis", "temporal"}
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert "taskplane_sse_streams_open" in metrics.text
