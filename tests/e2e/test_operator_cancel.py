"""One cancel, and no payload wedges a task: the API, the `cancel` signal and a
Temporal-native cancel end alike, whatever the `temporal` CLI sends.

Every way of cancelling, before, during or between steps, paused or not, ends
with `task.cancelled.v1`, status `cancelled` and close status CANCELED in
Temporal. Signals with the wrong arguments are ignored (logged), never a failed
workflow task; a 70 KB reason is cut, not an oversized event.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client, WorkflowExecutionStatus

from schemas.size import MAX_TEXT_BYTES
from schemas.workflow import workflow_id_for
from settings import Settings
from temporal.client import connect_client
from tests.e2e.conftest import ProcessStack
from tests.e2e.operator_cli import address_of, create_task, temporal_cli, wait_status
from tests.invariants import Observer, check_delivery, load_history
from tests.sse import collect_events, payload

pytestmark = pytest.mark.e2e


@pytest.fixture
async def temporal(stack: ProcessStack) -> Client:
    return await connect_client(Settings(temporal_address=stack.env["TASKPLANE_TEMPORAL_ADDRESS"]))


async def _ends_cancelled(
    stack: ProcessStack,
    client: httpx.AsyncClient,
    temporal: Client,
    pool: AsyncConnectionPool,
    task_id: str,
) -> dict[str, Any]:
    status, frames = await collect_events(client, f"/tasks/{task_id}/events")
    assert status == 200
    envelopes = [payload(frame) for frame in frames]
    assert envelopes[-1]["type"] == "task.cancelled.v1"
    await wait_status(client, task_id, "cancelled")
    handle = temporal.get_workflow_handle(workflow_id_for(task_id))
    deadline = time.monotonic() + 30
    while (await handle.describe()).status is WorkflowExecutionStatus.RUNNING:
        assert time.monotonic() < deadline, "the run never closed"
        await asyncio.sleep(0.1)
    assert (await handle.describe()).status is WorkflowExecutionStatus.CANCELED
    history = await load_history(pool, [task_id])
    check_delivery(history, [Observer.sse("sse", task_id, envelopes)], tasks=[task_id])
    last: dict[str, Any] = envelopes[-1]
    return last


Canceller = Callable[[ProcessStack, httpx.AsyncClient, str], Awaitable[None]]


async def _by_api(stack: ProcessStack, client: httpx.AsyncClient, task_id: str) -> None:
    assert (await client.post(f"/tasks/{task_id}/cancel")).status_code == 202


async def _by_signal(stack: ProcessStack, client: httpx.AsyncClient, task_id: str) -> None:
    await temporal_cli(
        address_of(stack),
        "workflow",
        "signal",
        "--workflow-id",
        workflow_id_for(task_id),
        "--name",
        "cancel",
        "--input",
        '"by signal"',
    )


async def _natively(stack: ProcessStack, client: httpx.AsyncClient, task_id: str) -> None:
    await temporal_cli(
        address_of(stack), "workflow", "cancel", "--workflow-id", workflow_id_for(task_id)
    )


CANCELLERS: dict[str, Canceller] = {"api": _by_api, "signal": _by_signal, "native": _natively}


@pytest.mark.parametrize("how", sorted(CANCELLERS))
@pytest.mark.parametrize("when", ["during_step", "while_paused", "before_first_step"])
async def test_every_cancel_ends_cancelled_and_canceled_in_temporal(
    stack: ProcessStack,
    client: httpx.AsyncClient,
    temporal: Client,
    pool: AsyncConnectionPool,
    how: str,
    when: str,
) -> None:
    task_input: dict[str, Any] = {"steps": 3, "step_seconds": 30}
    if when == "before_first_step":
        task_input["start_delay_seconds"] = 600
    if when == "while_paused":
        task_input["step_seconds"] = 0.5
    task_id = await create_task(client, task_input)
    await wait_status(client, task_id, "running")
    if when == "while_paused":
        assert (await client.post(f"/tasks/{task_id}/pause")).status_code == 202
        await wait_status(client, task_id, "paused")  # at the end of the running step
    if when == "during_step":
        await asyncio.sleep(0.5)
    await CANCELLERS[how](stack, client, task_id)
    await _ends_cancelled(stack, client, temporal, pool, task_id)


async def test_signals_with_wrong_arguments_are_ignored_and_the_task_goes_on(
    stack: ProcessStack, client: httpx.AsyncClient, temporal: Client, pool: AsyncConnectionPool
) -> None:
    task_id = await create_task(client, {"steps": 3, "step_seconds": 1})
    await wait_status(client, task_id, "running")
    workflow_id = workflow_id_for(task_id)
    for name, inputs in (
        ("cancel", ['"a"', '"b"']),  # two arguments
        ("cancel", ["42"]),  # not text
        ("pause", ['"why"']),  # takes none
        ("resume", ["{}"]),
    ):
        args = [arg for value in inputs for arg in ("--input", value)]
        await temporal_cli(
            address_of(stack),
            "workflow",
            "signal",
            "--workflow-id",
            workflow_id,
            "--name",
            name,
            *args,
        )
    # Still controllable: the status query answers, and a proper cancel works.
    state = await temporal.get_workflow_handle(workflow_id).query("status")
    assert state["status"] == "running"
    assert state["cancel_requested"] is False
    assert (await client.post(f"/tasks/{task_id}/cancel")).status_code == 202
    await _ends_cancelled(stack, client, temporal, pool, task_id)
    history = await temporal.get_workflow_handle(workflow_id).fetch_history()
    failed_tasks = [
        e for e in history.events if e.HasField("workflow_task_failed_event_attributes")
    ]
    assert failed_tasks == []


async def test_a_70_kb_cancel_reason_is_cut_not_an_oversized_event(
    stack: ProcessStack, client: httpx.AsyncClient, temporal: Client, pool: AsyncConnectionPool
) -> None:
    task_id = await create_task(client, {"steps": 2, "step_seconds": 30})
    await wait_status(client, task_id, "running")
    await temporal_cli(
        address_of(stack),
        "workflow",
        "signal",
        "--workflow-id",
        workflow_id_for(task_id),
        "--name",
        "cancel",
        "--input",
        json.dumps("r" * 70_000),
    )
    last = await _ends_cancelled(stack, client, temporal, pool, task_id)
    reason = last["data"]["reason"]
    assert len(reason.encode()) <= MAX_TEXT_BYTES
    assert reason.startswith("rrrr")
    assert "…[truncated" in reason
