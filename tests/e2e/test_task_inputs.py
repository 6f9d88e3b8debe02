"""Waiting for input on the real stack: `demo.approval` answered through REST (with the
409/422 refusals and Idempotency-Key repeats), the CLI and a one-time link with no
key; a rejection and a timeout fail the task with a clear `task.failed.v1`; a cancel
of a waiting task ends it like any cancel."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli import exit_codes
from schemas.workflow import workflow_id_for
from settings import Settings
from temporal.client import connect_client
from tests.e2e.conftest import ProcessStack, api_beside
from tests.e2e.operator_cli import address_of, temporal_cli, wait_status
from tests.polling import until
from tests.sse import SNAPSHOT, collect_events, payload, read_frames

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

KEY = "inputs-test-key-0123456789abcdef"
OTHER_KEY = "inputs-other-tenant-key-0123456789"
APPROVAL_EVENTS = [
    "task.created.v1",
    "task.step.started.v1",
    "task.step.completed.v1",
    "task.input.requested.v1",
    "task.input.received.v1",
]


async def start_approval(client: httpx.AsyncClient, **task_input: Any) -> str:
    body = {"type": "demo.approval", "input": {"step_seconds": 0, **task_input}}
    created = await client.post("/tasks", json=body)
    assert created.status_code == 202, created.text
    task_id: str = created.json()["task_id"]

    async def waiting() -> bool:
        status: str = (await client.get(f"/tasks/{task_id}")).json()["status"]
        return status == "waiting"

    await until(waiting, within=30, what="the task to wait for its input")
    return task_id


async def stream_to_end(client: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    """The task's events from its stream, read to the terminal one (numbered frames only)."""
    status, frames = await collect_events(client, f"/tasks/{task_id}/events")
    assert status == 200
    return [payload(frame) for frame in frames if frame.id is not None]


async def history(client: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    page = await client.get(f"/tasks/{task_id}/history", params={"limit": 1000})
    events: list[dict[str, Any]] = page.json()["events"]
    return events


async def test_an_approval_through_rest_with_refusals_and_repeats(
    both_workers_client: httpx.AsyncClient,
) -> None:
    """Twice: with a caching worker, and one that replays the whole history on every
    workflow task (the update, the timer, the events: all deterministic)."""
    client = both_workers_client
    task_id = await start_approval(client)
    listed = (await client.get("/tasks", params={"status": "waiting", "limit": 500})).json()
    assert task_id in [task["task_id"] for task in listed["tasks"]]
    requested = (await history(client, task_id))[-1]
    assert requested["type"] == "task.input.requested.v1"
    [waiting] = (await client.get(f"/tasks/{task_id}")).json()["waiting_inputs"]
    assert waiting == {
        "name": "approve",
        "input_schema": requested["data"]["input_schema"],
        "deadline": requested["data"]["deadline"],
        "prompt": "Approve this task?",
        "sequence": requested["sequence"],
    }
    async with client.stream("GET", f"/tasks/{task_id}/events?history=false") as stream:
        # A late subscriber's first frame with data (a `retry:` block may come before it).
        opening = await anext(f async for f in read_frames(stream, snapshot=True) if f.is_event)
    assert opening.event == SNAPSHOT
    assert payload(opening)["waiting_inputs"] == [waiting]
    assert requested["data"]["name"] == "approve"
    assert requested["data"]["input_schema"]["required"] == ["approved"]
    assert requested["data"]["deadline"].endswith("Z")
    url = f"/tasks/{task_id}/inputs/approve"

    invalid = await client.post(url, json={"approved": "yes"})
    assert invalid.status_code == 422
    assert invalid.headers["content-type"] == "application/problem+json"
    assert invalid.json()["errors"][0]["loc"] == ["approved"]
    unknown_field = await client.post(url, json={"approved": True, "colour": "red"})
    assert unknown_field.status_code == 422
    too_big = await client.post(url, json={"approved": True, "comment": "x" * 40_000})
    assert too_big.status_code == 422
    assert "32768 bytes" in too_big.json()["detail"]
    other_name = await client.post(f"/tasks/{task_id}/inputs/deploy", json={"go": True})
    assert other_name.status_code == 409

    key = {"Idempotency-Key": f"approve-{uuid.uuid4()}"}
    value = {"approved": True, "comment": "looks good"}
    first = await client.post(url, json=value, headers=key)
    assert first.status_code == 202, first.text
    again = await client.post(url, json=value, headers=key)
    assert (again.status_code, again.json()) == (200, first.json())
    assert first.json()["name"] == "approve"
    other_value = await client.post(url, json={"approved": False}, headers=key)
    assert other_value.status_code == 422
    second = await client.post(url, json=value)  # no key: a new delivery, and too late
    assert second.status_code == 409

    events = await stream_to_end(client, task_id)
    types = [e["type"] for e in events]
    assert types[:5] == APPROVAL_EVENTS
    assert types[-1] == "task.completed.v1"
    received = events[4]
    assert received["sequence"] == first.json()["sequence"]
    assert received["data"]["value"] == value
    assert received["data"]["via"] == "api"
    assert events[-1]["data"]["result"] == {"approved": True, "comment": "looks good"}
    assert (await client.get(f"/tasks/{task_id}")).json()["waiting_inputs"] == []
    after_end = await client.post(url, json=value)
    assert after_end.status_code == 409
    repeat_after_end = await client.post(url, json=value, headers=key)
    assert (repeat_after_end.status_code, repeat_after_end.json()) == (200, first.json())


async def test_of_two_deliveries_at_once_the_task_takes_one(client: httpx.AsyncClient) -> None:
    task_id = await start_approval(client)
    url = f"/tasks/{task_id}/inputs/approve"
    answers = await asyncio.gather(
        client.post(url, json={"approved": True, "comment": "first"}),
        client.post(url, json={"approved": True, "comment": "second"}),
    )
    assert sorted(a.status_code for a in answers) == [202, 409]
    events = await stream_to_end(client, task_id)
    received = [e for e in events if e["type"] == "task.input.received.v1"]
    [taken] = [a for a in answers if a.status_code == 202]
    assert [e["sequence"] for e in received] == [taken.json()["sequence"]]


async def test_a_rejection_fails_the_task_as_told(client: httpx.AsyncClient) -> None:
    task_id = await start_approval(client)
    answer = await client.post(
        f"/tasks/{task_id}/inputs/approve", json={"approved": False, "comment": "too risky"}
    )
    assert answer.status_code == 202
    events = await stream_to_end(client, task_id)
    assert events[-1]["type"] == "task.failed.v1"
    assert events[-1]["data"]["error"] == "not approved: too risky"
    task = (await client.get(f"/tasks/{task_id}")).json()
    assert (task["status"], task["error"]) == ("failed", "not approved: too risky")


async def test_no_answer_in_time_fails_the_task_clearly(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/tasks", json={"type": "demo.approval", "input": {"step_seconds": 0, "timeout_seconds": 1}}
    )
    task_id = created.json()["task_id"]
    events = await stream_to_end(client, task_id)
    assert [e["type"] for e in events[-3:]] == [
        "task.input.requested.v1",
        "task.input.received.v1",
        "task.failed.v1",
    ]
    assert events[-2]["data"]["timed_out"] is True
    assert events[-2]["data"]["value"] is None
    assert events[-1]["data"]["error"] == "InputTimedOut: input 'approve' was not given within 1 s"
    late = await client.post(f"/tasks/{task_id}/inputs/approve", json={"approved": True})
    assert late.status_code == 409


async def test_a_cancel_while_waiting_cancels_the_task(client: httpx.AsyncClient) -> None:
    task_id = await start_approval(client)
    cancelled = await client.post(f"/tasks/{task_id}/cancel")
    assert cancelled.status_code == 202
    events = await stream_to_end(client, task_id)
    assert events[-1]["type"] == "task.cancelled.v1"
    late = await client.post(f"/tasks/{task_id}/inputs/approve", json={"approved": True})
    assert late.status_code == 409


@pytest.mark.parametrize("operator_action", ["cancel", "terminate"])
async def test_an_operator_ends_a_waiting_task_consistently(
    stack: ProcessStack, client: httpx.AsyncClient, operator_action: str
) -> None:
    """Temporal-native cancel (the Web UI's Cancel) and terminate of a task that waits:
    the store, the stream and Temporal agree on the ending, and the wait is over."""
    task_id = await start_approval(client)
    temporal = await connect_client(
        Settings(temporal_address=stack.env["TASKPLANE_TEMPORAL_ADDRESS"])
    )
    query = f"TaskStatus = 'waiting' AND WorkflowId = '{workflow_id_for(task_id)}'"

    async def findable() -> bool:  # the operator finds it by its search attribute
        return [w.id async for w in temporal.list_workflows(query)] != []

    await until(findable, within=30, what="the waiting task in Temporal's visibility")
    # The CLI takes a reason with a terminate, not with a cancel by id.
    reason = ["--reason", "no approver"] if operator_action == "terminate" else []
    await temporal_cli(
        address_of(stack),
        "workflow",
        operator_action,
        "--workflow-id",
        workflow_id_for(task_id),
        *reason,
    )
    events = await stream_to_end(client, task_id)
    expected = {"cancel": "task.cancelled.v1", "terminate": "task.terminated.v2"}
    assert events[-1]["type"] == expected[operator_action]
    if reason:
        assert events[-1]["data"]["reason"] == "no approver"
    status = {"cancel": "cancelled", "terminate": "terminated"}[operator_action]
    await wait_status(client, task_id, status)
    late = await client.post(f"/tasks/{task_id}/inputs/approve", json={"approved": True})
    assert late.status_code == 409


@pytest.fixture
def keyed_api(stack: ProcessStack, services: Any, tmp_path: Path) -> Iterator[ProcessStack]:
    with api_beside(
        stack,
        services,
        tmp_path,
        api_keys=f"acme:{KEY},other:{OTHER_KEY}",
        stream_token_secret="s" * 32,
    ) as api:
        yield api


async def test_the_cli_delivers_an_input(keyed_api: ProcessStack) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=keyed_api.base_url, headers=auth, timeout=30) as http:
        task_id = await start_approval(http)

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            env = {"TASKPLANE_API_URL": keyed_api.base_url, "TASKPLANE_API_KEY": KEY}
            return subprocess.run(
                [sys.executable, "-m", "cli.main", "tasks", *args],
                capture_output=True,
                text=True,
                timeout=60,
                env={**keyed_api.env, **env},
                check=False,
            )

        wrong = cli("input", task_id, "approve", '{"approved": 1}')
        assert wrong.returncode == exit_codes.EXIT_USAGE, wrong.stderr
        assert "approved" in wrong.stderr
        done = cli("input", task_id, "approve", '{"approved": true}', "--json")
        assert done.returncode == exit_codes.EXIT_OK, done.stderr
        assert json.loads(done.stdout)["name"] == "approve"
        again = cli("input", task_id, "approve", '{"approved": true}')
        assert again.returncode == exit_codes.EXIT_CONFLICT
        watched = cli("watch", task_id)
        assert watched.returncode == exit_codes.EXIT_OK, watched.stderr
        assert "task.input.received.v1 approve" in watched.stdout


async def test_a_one_time_link_delivers_without_a_key_once(keyed_api: ProcessStack) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=keyed_api.base_url, headers=auth, timeout=30) as http:
        task_id = await start_approval(http)
        other = {"Authorization": f"Bearer {OTHER_KEY}"}
        for path in ("", "/link"):  # another tenant's task does not exist for them
            refused = await http.post(
                f"/tasks/{task_id}/inputs/approve{path}", json={"approved": True}, headers=other
            )
            assert refused.status_code == 404
        minted = await http.post(f"/tasks/{task_id}/inputs/approve/link")
        assert minted.status_code == 201, minted.text
        token = minted.json()["token"]
        assert minted.json()["url"].endswith(f"/#/input/{token}")
    async with httpx.AsyncClient(base_url=keyed_api.base_url, timeout=30) as anonymous:
        assert (await anonymous.get(f"/tasks/{task_id}")).status_code == 401
        state = (await anonymous.get(f"/input-links/{token}")).json()
        assert (state["task_id"], state["name"], state["used"]) == (task_id, "approve", False)
        assert state["waiting"]["input_schema"]["required"] == ["approved"]
        forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        assert (await anonymous.post(f"/input-links/{forged}", json={})).status_code == 404
        invalid = await anonymous.post(f"/input-links/{token}", json={"approved": "yes"})
        assert invalid.status_code == 422  # the use is given back: the person may retry
        delivered = await anonymous.post(f"/input-links/{token}", json={"approved": True})
        assert delivered.status_code == 202, delivered.text
        used = await anonymous.post(f"/input-links/{token}", json={"approved": True})
        assert used.status_code == 410
        assert (await anonymous.get(f"/input-links/{token}")).json()["used"] is True
    async with httpx.AsyncClient(base_url=keyed_api.base_url, headers=auth, timeout=30) as http:
        events = await stream_to_end(http, task_id)
    assert events[-1]["type"] == "task.completed.v1"
    assert [e["data"].get("via") for e in events if e["type"] == "task.input.received.v1"] == [
        "link"
    ]
