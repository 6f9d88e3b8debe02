"""One truth across Temporal and the store, whatever an operator does with the `temporal` CLI.

Terminate and a workflow timeout end the task with `task.terminated.v1` (the
worker's reconciler records it; readers get it upcast to `task.terminated.v2`
unless they ask for `?version=stored`); a reset opens a new chapter (`task.reset.v1`,
then the new run's events, then one terminal event). Every check ends with the
delivery invariants over the store's history and an SSE client.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from schemas.workflow import workflow_id_for
from tests.e2e.conftest import ProcessStack
from tests.e2e.operator_cli import address_of, create_task, temporal_cli, wait_status
from tests.invariants import Observer, check_delivery, load_history
from tests.sse import collect_events, payload

pytestmark = pytest.mark.e2e


async def _stream(client: httpx.AsyncClient, task_id: str, after: int = 0) -> list[dict[str, Any]]:
    status, frames = await collect_events(
        client, f"/tasks/{task_id}/events", headers={"Last-Event-ID": str(after)}
    )
    assert status == 200, status
    return [payload(frame) for frame in frames]


async def _check(pool: AsyncConnectionPool, task_id: str, envelopes: list[dict[str, Any]]) -> None:
    history = await load_history(pool, [task_id])
    check_delivery(history, [Observer.sse("sse", task_id, envelopes)], tasks=[task_id])


async def test_terminate_ends_the_task_and_its_streams_with_task_terminated(
    stack: ProcessStack, client: httpx.AsyncClient, pool: AsyncConnectionPool
) -> None:
    task_id = await create_task(client, {"steps": 5, "step_seconds": 2, "progress_ticks": 4})
    watcher = asyncio.create_task(_stream(client, task_id))
    await wait_status(client, task_id, "running")
    await temporal_cli(
        address_of(stack),
        "workflow",
        "terminate",
        "--workflow-id",
        workflow_id_for(task_id),
        "--reason",
        "stuck on a bad deploy",
    )
    envelopes = await asyncio.wait_for(watcher, 60)  # the open stream ends by itself
    last = envelopes[-1]
    assert last["type"] == "task.terminated.v2"  # stored as v1, read as the latest version
    assert last["data"]["reason"] == "stuck on a bad deploy"
    assert last["data"]["close_status"] == "TERMINATED"
    assert last["data"]["timed_out"] is False
    after = {"after": last["sequence"] - 1}
    stored = await client.get(f"/tasks/{task_id}/history", params={**after, "version": "stored"})
    latest = await client.get(f"/tasks/{task_id}/history", params=after)
    [as_stored], [as_latest] = stored.json()["events"], latest.json()["events"]
    assert (as_stored["type"], as_latest) == ("task.terminated.v1", last)
    assert as_stored["id"] == last["id"]
    assert "timed_out" not in as_stored["data"]
    status, frames = await collect_events(
        client, f"/tasks/{task_id}/events?after={after['after']}&version=stored"
    )
    assert (status, [payload(f) for f in frames]) == (200, [as_stored])
    body = await wait_status(client, task_id, "terminated")
    assert body["error"] == "stuck on a bad deploy"
    # Clients stop: a reconnect after the terminal event gets 204, control answers 409.
    resumed = await client.get(
        f"/tasks/{task_id}/events", headers={"Last-Event-ID": str(last["sequence"])}
    )
    assert resumed.status_code == 204
    assert (await client.post(f"/tasks/{task_id}/cancel")).status_code == 409
    await _check(pool, task_id, envelopes)


async def test_a_workflow_timeout_is_recorded_as_terminated_with_timed_out(
    stack: ProcessStack, client: httpx.AsyncClient, pool: AsyncConnectionPool
) -> None:
    """An operator starts a task's workflow by hand with an execution timeout it cannot meet."""
    task_id = str(uuid.uuid4())
    request = {
        "task_id": task_id,
        "task_type": "demo.pipeline",
        "input": {"steps": 10, "step_seconds": 2},
        "owner": "default",
    }
    await temporal_cli(
        address_of(stack),
        "workflow",
        "start",
        "--type",
        "TaskWorkflow",
        "--task-queue",
        stack.env["TASKPLANE_TASK_QUEUE"],
        "--workflow-id",
        workflow_id_for(task_id),
        "--execution-timeout",
        "3s",
        "--input",
        json.dumps(request),
    )
    envelopes = await asyncio.wait_for(_stream_when_known(client, task_id), 60)
    assert envelopes[-1]["type"] == "task.terminated.v2"
    assert envelopes[-1]["data"]["close_status"] == "TIMED_OUT"
    assert envelopes[-1]["data"]["timed_out"] is True
    await wait_status(client, task_id, "terminated")
    await _check(pool, task_id, envelopes)


async def _stream_when_known(client: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    """A task started outside the API: its stream, once the API has heard of it."""
    deadline = time.monotonic() + 30
    while (await client.get(f"/tasks/{task_id}")).status_code == 404:
        assert time.monotonic() < deadline, "the API never heard of the task"
        await asyncio.sleep(0.1)
    return await _stream(client, task_id)


async def test_reset_of_a_finished_task_opens_a_new_chapter(
    stack: ProcessStack, client: httpx.AsyncClient, pool: AsyncConnectionPool
) -> None:
    task_id = await create_task(client, {"steps": 2, "step_seconds": 0})
    first = await _stream(client, task_id)
    assert first[-1]["type"] == "task.completed.v1"
    old_end = first[-1]["sequence"]
    assert (
        await client.get(f"/tasks/{task_id}/events", headers={"Last-Event-ID": str(old_end)})
    ).status_code == 204

    await temporal_cli(
        address_of(stack),
        "workflow",
        "reset",
        "--workflow-id",
        workflow_id_for(task_id),
        "--type",
        "FirstWorkflowTask",
        "--reason",
        "re-run after the fix",
    )
    # A client that had everything reconnects: it gets the new chapter, not 204.
    second = await asyncio.wait_for(_stream_after_reset(client, task_id, old_end), 60)
    reset = second[0]
    assert reset["type"] == "task.reset.v1"
    assert reset["sequence"] == old_end + 1
    # As Temporal recorded it: the CLI puts the operator's identity in front.
    assert reset["data"]["reason"].endswith("re-run after the fix")
    assert reset["data"]["to_run_id"] != reset["data"]["from_run_id"]
    assert reset["data"]["reset_point"]
    assert second[-1]["type"] == "task.completed.v1"
    assert [e["type"] for e in second].count("task.created.v1") == 0
    # New ids: nothing of the new chapter deduped against the old one.
    assert not {e["id"] for e in first} & {e["id"] for e in second}

    # A stream from the start delivers both chapters and ends at the current ending.
    whole = await _stream(client, task_id)
    assert [e["sequence"] for e in whole] == list(range(1, second[-1]["sequence"] + 1))
    body = await wait_status(client, task_id, "completed")
    assert body["progress"] == 100.0
    await _check(pool, task_id, whole)


async def _stream_after_reset(
    client: httpx.AsyncClient, task_id: str, after: int
) -> list[dict[str, Any]]:
    while True:
        response = await client.get(
            f"/tasks/{task_id}/events", headers={"Last-Event-ID": str(after)}
        )
        if response.status_code != 204:
            break
        await asyncio.sleep(0.1)  # until the reset run records its first event
    return await _stream(client, task_id, after)


async def test_reset_of_a_running_task_is_no_termination(
    stack: ProcessStack, client: httpx.AsyncClient, pool: AsyncConnectionPool
) -> None:
    """The reset terminates the run it leaves: that ending belongs to no chapter."""
    task_id = await create_task(client, {"steps": 3, "step_seconds": 1, "progress_ticks": 2})
    watcher = asyncio.create_task(_stream(client, task_id))
    await wait_status(client, task_id, "running")
    await asyncio.sleep(1.5)  # into the second step
    await temporal_cli(
        address_of(stack),
        "workflow",
        "reset",
        "--workflow-id",
        workflow_id_for(task_id),
        "--type",
        "FirstWorkflowTask",
        "--reason",
        "restart",
    )
    envelopes = await asyncio.wait_for(watcher, 90)
    types = [e["type"] for e in envelopes]
    assert types.count("task.reset.v1") == 1
    assert types[-1] == "task.completed.v1"
    assert "task.terminated.v2" not in types
    await _check(pool, task_id, envelopes)
    # Still none after the reconciler had time to look at the old, terminated run. A
    # sleep, as nothing else shows it: the reconciler runs in the worker process (a
    # round every 2 s) and exports no count of its rounds to wait for.
    await asyncio.sleep(5)
    assert "task.terminated.v1" not in {e.type for e in await load_history(pool, [task_id])}
