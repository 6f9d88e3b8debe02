"""Bulk operations (`POST /tasks/bulk`, `GET /bulk/{id}`) on real servers.

A stack of its own with two tenants of this module only, so the filters match nothing
another test made; each test scopes its filter further with `created_after`.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli import exit_codes
from tests.e2e.conftest import ProcessStack, running_stack
from tests.polling import until
from tests.sse import Frame, collect_events, payload

pytestmark = pytest.mark.e2e

TENANT_A, TENANT_B = f"bulk-a-{uuid.uuid4().hex[:6]}", f"bulk-b-{uuid.uuid4().hex[:6]}"
KEY_A, KEY_B = f"ka-{uuid.uuid4().hex}", f"kb-{uuid.uuid4().hex}"
LONG = {"steps": 1, "step_seconds": 600}


@pytest.fixture(scope="module")
def bulk_stack(services: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessStack]:
    with running_stack(
        services,
        tmp_path_factory.mktemp("bulk"),
        api_keys=f"{TENANT_A}:{KEY_A},{TENANT_B}:{KEY_B}",
        bulk_heartbeat_timeout_seconds="5",
    ) as stack:
        yield stack


@pytest.fixture
async def http_a(bulk_stack: ProcessStack) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {KEY_A}"}
    async with httpx.AsyncClient(base_url=bulk_stack.base_url, headers=headers, timeout=60) as c:
        yield c


@pytest.fixture
async def http_b(bulk_stack: ProcessStack) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {KEY_B}"}
    async with httpx.AsyncClient(base_url=bulk_stack.base_url, headers=headers, timeout=60) as c:
        yield c


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


async def create(http: httpx.AsyncClient, task_type: str, task_input: dict[str, Any]) -> str:
    response = await http.post("/tasks", json={"type": task_type, "input": task_input})
    assert response.status_code == 202, response.text
    return str(response.json()["task_id"])


async def wait_statuses(http: httpx.AsyncClient, task_ids: list[str], status: str) -> None:
    async def all_there() -> bool:
        for task_id in task_ids:
            if (await http.get(f"/tasks/{task_id}")).json()["status"] != status:
                return False
        return True

    await until(all_there, within=60, what=f"{len(task_ids)} tasks {status}")


async def bulk(
    http: httpx.AsyncClient, action: str, filter_: dict[str, Any], **headers: str
) -> httpx.Response:
    return await http.post(
        "/tasks/bulk", json={"action": action, "filter": filter_}, headers=headers
    )


async def finished(http: httpx.AsyncClient, bulk_id: str, within: float = 120) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def completed() -> bool:
        seen.update((await http.get(f"/bulk/{bulk_id}")).json())
        return seen.get("status") == "completed"

    await until(completed, within=within, what=f"bulk operation {bulk_id} completed")
    return seen


async def statuses(http: httpx.AsyncClient, task_ids: list[str]) -> list[str]:
    return [(await http.get(f"/tasks/{t}")).json()["status"] for t in task_ids]


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    prefix = f"{name}{{{wanted}}} " if labels else f"{name} "
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


async def test_cancel_by_type_among_mixed_tasks(
    bulk_stack: ProcessStack, http_a: httpx.AsyncClient, http_b: httpx.AsyncClient
) -> None:
    since = now_iso()
    targets = [await create(http_a, "demo.pipeline", LONG) for _ in range(6)]
    waiting = [await create(http_a, "demo.approval", {}) for _ in range(2)]
    done = [await create(http_a, "demo.pipeline", {"steps": 1, "step_seconds": 0})]
    others = [await create(http_b, "demo.pipeline", LONG)]
    await wait_statuses(http_a, targets, "running")
    await wait_statuses(http_a, waiting, "waiting")
    await wait_statuses(http_a, done, "completed")
    await wait_statuses(http_b, others, "running")
    streams = [
        asyncio.create_task(collect_events(http_a, f"/tasks/{t}/events", read_timeout=120))
        for t in targets
    ]

    filter_ = {"status": ["running", "waiting"], "type": "demo.pipeline", "created_after": since}
    accepted = await bulk(http_a, "cancel", filter_)
    assert accepted.status_code == 202, accepted.text
    operation = accepted.json()
    assert operation["action"] == "cancel"
    assert operation["links"]["self"] == f"/bulk/{operation['id']}"
    result = await finished(http_a, operation["id"])
    assert (result["matched"], result["done"], result["skipped"], result["failed"]) == (6, 6, 0, 0)
    assert result["pending"] == 0
    assert result["finished_at"] is not None

    for stream in streams:  # each stream ends with its cancellation, by this operation
        status, frames = await stream
        assert status == 200
        last: Frame = frames[-1]
        assert last.event == "task.cancelled.v1"
        assert payload(last)["data"]["reason"] == f"bulk operation {operation['id']}"
    assert await statuses(http_a, targets) == ["cancelled"] * 6
    assert await statuses(http_a, waiting) == ["waiting"] * 2  # another type: untouched
    assert await statuses(http_a, done) == ["completed"]
    assert await statuses(http_b, others) == ["running"]  # another tenant's: untouched
    assert (await http_b.get(f"/bulk/{operation['id']}")).status_code == 404
    listed = (await http_a.get("/tasks/bulk", params={"limit": 5})).json()["operations"]
    assert listed[0]["id"] == operation["id"]
    theirs_listed = (await http_b.get("/tasks/bulk")).json()["operations"]
    assert operation["id"] not in {o["id"] for o in theirs_listed}

    metrics_url = f"http://127.0.0.1:{bulk_stack.worker_metrics_port}/metrics"
    metrics = (await http_a.get(metrics_url)).text
    assert metric(metrics, "taskplane_bulk_tasks_total", action="cancel", outcome="done") >= 6
    assert metric(metrics, "taskplane_bulk_operations_completed_total") >= 1

    # Tenant B's own bulk operation sees only its task.
    theirs = await bulk(http_b, "cancel", {"type": "demo.pipeline", "created_after": since})
    result = await finished(http_b, theirs.json()["id"])
    assert (result["matched"], result["done"]) == (1, 1)
    for task_id in waiting:  # leave nothing waiting behind
        assert (await http_a.post(f"/tasks/{task_id}/cancel")).status_code == 202


async def test_pause_then_resume_by_filter(http_a: httpx.AsyncClient) -> None:
    since = now_iso()
    task_ids = [
        await create(http_a, "demo.pipeline", {"steps": 30, "step_seconds": 1}) for _ in range(4)
    ]
    await wait_statuses(http_a, task_ids, "running")
    scope = {"type": "demo.pipeline", "created_after": since}

    paused = await bulk(http_a, "pause", {**scope, "status": "running"})
    result = await finished(http_a, paused.json()["id"])
    assert (result["matched"], result["done"], result["failed"]) == (4, 4, 0)
    await wait_statuses(http_a, task_ids, "paused")  # at each task's next step boundary

    again = await bulk(http_a, "pause", scope)  # makes no sense now: skipped, with why
    result = await finished(http_a, again.json()["id"])
    assert (result["matched"], result["done"], result["skipped"]) == (4, 0, 4)
    assert result["reasons"] == {"skipped: is already paused": 4}

    resumed = await bulk(http_a, "resume", {**scope, "status": ["paused"]})
    result = await finished(http_a, resumed.json()["id"])
    assert (result["matched"], result["done"], result["failed"]) == (4, 4, 0)
    await wait_statuses(http_a, task_ids, "running")
    for task_id in task_ids:
        history = (await http_a.get(f"/tasks/{task_id}/history")).json()["events"]
        types = [e["type"] for e in history]
        assert types.count("task.paused.v1") == 1
        assert types.count("task.resumed.v1") == 1

    cancelled = await bulk(http_a, "cancel", scope)
    result = await finished(http_a, cancelled.json()["id"])
    assert result["done"] == 4


async def test_cancel_by_concurrency_key_matches_tasks_of_any_type(
    http_a: httpx.AsyncClient, http_b: httpx.AsyncClient
) -> None:
    """The key is on every task's owner row (migration 0021): a type with no limit, and
    the default key (the tenant), match too; another key or tenant does not."""
    since = now_iso()
    key = f"reports-{uuid.uuid4().hex[:6]}"

    async def keyed(http: httpx.AsyncClient, concurrency_key: str | None) -> str:
        body: dict[str, Any] = {"type": "demo.pipeline", "input": LONG}
        if concurrency_key is not None:
            body["concurrency_key"] = concurrency_key
        response = await http.post("/tasks", json=body)
        assert response.status_code == 202, response.text
        return str(response.json()["task_id"])

    targets = [await keyed(http_a, key) for _ in range(2)]
    default_key = [await keyed(http_a, None)]
    other_key = [await keyed(http_a, f"{key}-other")]
    other_tenant = [await keyed(http_b, key)]
    everything = targets + default_key + other_key
    await wait_statuses(http_a, everything, "running")
    await wait_statuses(http_b, other_tenant, "running")

    cancelled = await bulk(http_a, "cancel", {"concurrency_key": key, "created_after": since})
    assert cancelled.status_code == 202, cancelled.text
    result = await finished(http_a, cancelled.json()["id"])
    assert (result["matched"], result["done"], result["failed"]) == (2, 2, 0)
    await wait_statuses(http_a, targets, "cancelled")
    # The default key is the tenant's name.
    by_tenant = await bulk(http_a, "cancel", {"concurrency_key": TENANT_A, "created_after": since})
    result = await finished(http_a, by_tenant.json()["id"])
    assert (result["matched"], result["done"]) == (1, 1)
    await wait_statuses(http_a, default_key, "cancelled")
    assert await statuses(http_a, other_key) == ["running"]
    assert await statuses(http_b, other_tenant) == ["running"]
    for http, task_ids in ((http_a, other_key), (http_b, other_tenant)):
        for task_id in task_ids:
            assert (await http.post(f"/tasks/{task_id}/cancel")).status_code == 202


async def test_idempotency_key_and_validation(
    http_a: httpx.AsyncClient, http_b: httpx.AsyncClient
) -> None:
    key = f'"{uuid.uuid4()}"'
    filter_ = {"type": "no.such.type", "created_after": now_iso()}
    first = await bulk(http_a, "cancel", filter_, **{"Idempotency-Key": key})
    again = await bulk(http_a, "cancel", filter_, **{"Idempotency-Key": key})
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["id"] == again.json()["id"]
    other = await bulk(http_a, "pause", filter_, **{"Idempotency-Key": key})
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    # The same key in another tenant names another operation.
    theirs = await bulk(http_b, "cancel", filter_, **{"Idempotency-Key": key})
    assert theirs.status_code == 202
    assert theirs.json()["id"] != first.json()["id"]
    result = await finished(http_a, first.json()["id"])
    assert (result["matched"], result["done"]) == (0, 0)
    keyed = await bulk(http_a, "pause", {"concurrency_key": "nobody", "created_after": now_iso()})
    assert keyed.status_code == 202, keyed.text
    assert (await finished(http_a, keyed.json()["id"]))["matched"] == 0

    for body in (
        {"action": "delete", "filter": {"type": "demo.pipeline"}},
        {"action": "cancel", "filter": {}},
        {"action": "cancel"},
        {"action": "cancel", "filter": {"status": "sleeping"}},
        {"action": "cancel", "filter": {"colour": "red"}},
        {"action": "cancel", "filter": {"created_before": "2020-01-01T00:00:00"}},  # no zone
        {
            "action": "cancel",
            "filter": {
                "created_after": "2026-01-02T00:00:00Z",
                "created_before": "2026-01-01T00:00:00Z",
            },
        },
    ):
        refused = await http_a.post("/tasks/bulk", json=body)
        assert refused.status_code == 422, (body, refused.text)
    assert (await http_a.get("/bulk/not-an-id")).status_code == 404
    assert (await http_a.get(f"/bulk/{uuid.uuid4()}")).status_code == 404
    malformed = await bulk(http_a, "cancel", filter_, **{"Idempotency-Key": '"open'})
    assert malformed.status_code == 400


@pytest.fixture
def slow_stack(services: Any, tmp_path: Path) -> Iterator[ProcessStack]:
    """One task acted on at a time, four a second: a SIGKILL lands mid-operation."""
    with running_stack(
        services,
        tmp_path,
        api_keys=f"{TENANT_A}:{KEY_A}",
        bulk_rate_per_second="4",
        bulk_concurrency="1",
        bulk_act_page_size="5",
        bulk_heartbeat_timeout_seconds="3",
    ) as stack:
        yield stack


async def test_worker_sigkill_mid_operation(slow_stack: ProcessStack) -> None:
    headers = {"Authorization": f"Bearer {KEY_A}"}
    async with httpx.AsyncClient(base_url=slow_stack.base_url, headers=headers, timeout=60) as http:
        since = now_iso()
        task_ids = [await create(http, "demo.pipeline", LONG) for _ in range(16)]
        await wait_statuses(http, task_ids, "running")
        accepted = await bulk(http, "cancel", {"type": "demo.pipeline", "created_after": since})
        bulk_id = accepted.json()["id"]

        async def some_done() -> bool:
            return int((await http.get(f"/bulk/{bulk_id}")).json()["done"]) >= 3

        await until(some_done, within=60, what="the operation under way")
        slow_stack.stop("worker", kill=True)
        midway = (await http.get(f"/bulk/{bulk_id}")).json()
        assert midway["status"] == "running"
        assert midway["done"] < 16
        slow_stack.start("worker")

        result = await finished(http, bulk_id, within=180)
        counts = (result["matched"], result["done"], result["skipped"], result["failed"])
        assert counts == (16, 16, 0, 0)
        # `done` is the workflow's acceptance (the API's 202); the task's terminal event
        # follows once its step is cancelled, which waits for the killed worker's step.
        await wait_statuses(http, task_ids, "cancelled")
        for task_id in task_ids:
            history = (await http.get(f"/tasks/{task_id}/history")).json()["events"]
            assert [e["sequence"] for e in history] == list(range(1, len(history) + 1))
            cancels = [e for e in history if e["type"] == "task.cancelled.v1"]
            assert len(cancels) == 1
            assert history[-1] == cancels[0]
            assert cancels[0]["data"]["reason"] == f"bulk operation {bulk_id}"


async def test_the_cli_runs_a_bulk_operation(
    bulk_stack: ProcessStack, http_a: httpx.AsyncClient
) -> None:
    since = now_iso()
    task_ids = [await create(http_a, "demo.pipeline", LONG) for _ in range(2)]
    await wait_statuses(http_a, task_ids, "running")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        env = {"TASKPLANE_API_URL": bulk_stack.base_url, "TASKPLANE_API_KEY": KEY_A}
        return subprocess.run(
            [sys.executable, "-m", "cli.main", "tasks", "bulk", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={**bulk_stack.env, **env},
            check=False,
        )

    ran = await asyncio.to_thread(
        cli, "cancel", "--status", "running", "--created-after", since, "--wait", "--json"
    )
    assert ran.returncode == exit_codes.EXIT_OK, ran.stderr
    operation = json.loads(ran.stdout)
    assert (operation["status"], operation["matched"], operation["done"]) == ("completed", 2, 2)
    shown = await asyncio.to_thread(cli, "show", operation["id"])
    assert shown.returncode == exit_codes.EXIT_OK, shown.stderr
    assert "matched 2, done 2, skipped 0, failed 0" in shown.stdout
    unknown = await asyncio.to_thread(cli, "show", str(uuid.uuid4()))
    assert unknown.returncode == exit_codes.EXIT_NOT_FOUND
    no_filter = await asyncio.to_thread(cli, "pause")
    assert no_filter.returncode == exit_codes.EXIT_USAGE
    assert "at least one criterion" in no_filter.stderr
