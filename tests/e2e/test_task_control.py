"""Temporal done right, seen from outside: idempotency, control, cancellation, operators."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import CancelledError

from schemas.workflow import workflow_id_for
from settings import Settings
from temporal.client import connect_client
from tests.e2e.operator_cli import wait_status
from tests.polling import until
from tests.sse import collect_events, payload

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(both_workers_client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Every test here runs twice: with a caching worker and with a replaying one."""
    return both_workers_client


async def listed(temporal: Client, query: str, within: float = 10) -> list[str]:
    """Workflow ids matching `query`, polling: the visibility store updates asynchronously."""
    deadline = time.monotonic() + within
    while True:
        found = [w.id async for w in temporal.list_workflows(query)]
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


@pytest.fixture
async def temporal(stack: Any) -> Client:
    settings = Settings(temporal_address=stack.env["TASKPLANE_TEMPORAL_ADDRESS"])
    return await connect_client(settings)


async def post_task(
    client: httpx.AsyncClient, task_input: dict[str, Any], **headers: str
) -> httpx.Response:
    return await client.post(
        "/tasks", json={"type": "demo.pipeline", "input": task_input}, headers=headers
    )


async def test_idempotency_key_202_then_200_and_conflicts(client: httpx.AsyncClient) -> None:
    key = f'"{uuid.uuid4()}"'
    body = {"steps": 1, "step_seconds": 0}
    first = await post_task(client, body, **{"Idempotency-Key": key})
    again = await post_task(client, body, **{"Idempotency-Key": key})
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["task_id"] == again.json()["task_id"]
    await collect_events(client, f"/tasks/{first.json()['task_id']}/events")
    after_done = await post_task(client, body, **{"Idempotency-Key": key})
    assert after_done.status_code == 200
    assert after_done.json()["status"] == "completed"
    different = await post_task(client, {"steps": 2}, **{"Idempotency-Key": key})
    assert different.status_code == 422
    malformed = await post_task(client, body, **{"Idempotency-Key": '"unterminated'})
    assert malformed.status_code == 400
    assert malformed.headers["content-type"] == "application/problem+json"


async def test_concurrent_posts_with_one_key_start_one_workflow(
    client: httpx.AsyncClient, temporal: Client
) -> None:
    key = f"concurrent-{uuid.uuid4()}"
    responses = await asyncio.gather(
        *(
            post_task(client, {"steps": 1, "step_seconds": 0.5}, **{"Idempotency-Key": key})
            for _ in range(8)
        )
    )
    assert sorted(r.status_code for r in responses) == [200] * 7 + [202]
    task_ids = {r.json()["task_id"] for r in responses}
    assert len(task_ids) == 1
    workflow_id = workflow_id_for(task_ids.pop())
    runs = [w async for w in temporal.list_workflows(f"WorkflowId = '{workflow_id}'")]
    assert len(runs) == 1


async def wait_for_event(client: httpx.AsyncClient, task_id: str, event_type: str) -> None:
    async def recorded() -> bool:
        page = (await client.get(f"/tasks/{task_id}/history", params={"limit": 1000})).json()
        return any(e["type"] == event_type for e in page["events"])

    await until(recorded, within=15, what=f"{event_type} of task {task_id}")


async def test_cancel_interrupts_a_running_step(client: httpx.AsyncClient) -> None:
    task_id = (await post_task(client, {"steps": 2, "step_seconds": 60})).json()["task_id"]
    await wait_for_event(client, task_id, "task.step.started.v1")  # inside the 60 s step
    assert (await client.post(f"/tasks/{task_id}/cancel")).status_code == 202
    _, frames = await collect_events(client, f"/tasks/{task_id}/events")
    assert frames[-1].event == "task.cancelled.v1"
    assert "task.step.completed.v1" not in [f.event for f in frames]
    # Stopped inside the step, by the task's own clock: the step did not run its 60 s out.
    times = {f.event: datetime.fromisoformat(payload(f)["time"]) for f in frames}
    assert times["task.cancelled.v1"] - times["task.step.started.v1"] < timedelta(seconds=60)


async def test_each_control_request_sees_the_one_before(client: httpx.AsyncClient) -> None:
    """Back-to-back requests, no waiting between them: the second of a pair is refused
    every time, because the first was applied by the workflow before it answered 202
    (a query right after a signal could still see the state before the signal)."""
    task_id = (await post_task(client, {"steps": 2, "step_seconds": 30})).json()["task_id"]
    await wait_for_event(client, task_id, "task.step.started.v1")
    for _ in range(5):
        assert (await client.post(f"/tasks/{task_id}/pause")).status_code == 202
        again = await client.post(f"/tasks/{task_id}/pause")
        assert again.status_code == 409, again.text
        assert again.json()["detail"] == f"task {task_id} is already paused"
        assert (await client.post(f"/tasks/{task_id}/resume")).status_code == 202
        again = await client.post(f"/tasks/{task_id}/resume")
        assert again.status_code == 409, again.text
        assert again.json()["detail"] == f"task {task_id} is not paused"
    assert (await client.post(f"/tasks/{task_id}/cancel")).status_code == 202
    _, frames = await collect_events(client, f"/tasks/{task_id}/events")
    assert frames[-1].event == "task.cancelled.v1"
    # Inside one step every pause was withdrawn before a boundary: none took effect.
    assert "task.paused.v1" not in [f.event for f in frames]
    assert (await client.post(f"/tasks/{task_id}/resume")).status_code == 409


async def test_operator_signals_and_native_cancel_take_the_same_path(
    client: httpx.AsyncClient, temporal: Client
) -> None:
    task_id = (await post_task(client, {"steps": 3, "step_seconds": 0.5})).json()["task_id"]
    handle = temporal.get_workflow_handle(workflow_id_for(task_id))
    await wait_status(client, task_id, "running")
    await handle.signal("pause")  # what `temporal workflow signal --name pause` sends
    await wait_status(client, task_id, "paused")
    state = await handle.query("status")  # `temporal workflow query --type status`
    assert state["status"] == "paused"
    paused = await listed(
        temporal, f"TaskStatus = 'paused' AND WorkflowId = '{workflow_id_for(task_id)}'"
    )
    assert paused == [workflow_id_for(task_id)]
    assert (await client.post(f"/tasks/{task_id}/pause")).status_code == 409
    await handle.cancel()  # the Web UI's Cancel button
    _, frames = await collect_events(client, f"/tasks/{task_id}/events")
    types = [f.event for f in frames]
    assert types[-1] == "task.cancelled.v1"
    assert types.count("task.paused.v1") == 1
    assert (await client.get(f"/tasks/{task_id}")).json()["status"] == "cancelled"
    with pytest.raises(WorkflowFailureError) as ended:
        await handle.result()
    assert isinstance(ended.value.cause, CancelledError)
    description = await handle.describe()
    assert description.status is not None
    assert description.status.name == "CANCELED"


async def test_search_attributes_and_details_follow_the_task(
    client: httpx.AsyncClient, temporal: Client
) -> None:
    task_id = (await post_task(client, {"steps": 3, "step_seconds": 0.05})).json()["task_id"]
    await collect_events(client, f"/tasks/{task_id}/events")
    workflow_id = workflow_id_for(task_id)
    query = f"TaskType = 'demo.pipeline' AND TaskStep = 3 AND WorkflowId = '{workflow_id}'"
    assert await listed(temporal, query) == [workflow_id]
    query = f"TaskStatus = 'completed' AND WorkflowId = '{workflow_id}'"
    assert await listed(temporal, query) == [workflow_id]
    description = await temporal.get_workflow_handle(workflow_id).describe()
    assert await description.static_summary() == f"demo.pipeline task {task_id}"
