"""Schedules on the real stack (issue 24 item 4): CRUD, tenancy, validation, runs that
are ordinary tasks, trigger, pause/resume, backfill, fires across a worker restart, and
`taskplane schedules`. Each fire's lag is a figure for bench/schedules.py, not asserted."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ProcessStack, running_stack
from tests.polling import until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

KEY_A = "schedules-key-of-tenant-a-0123456789"
KEY_B = "schedules-key-of-tenant-b-0123456789"
QUICK = {"steps": 1, "step_seconds": 0.05}


@pytest.fixture(scope="module")
def keyed_stack(services: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessStack]:
    """A stack of its own: one test restarts its worker."""
    with running_stack(
        services,
        tmp_path_factory.mktemp("schedules-logs"),
        api_keys=f"tenant_a:{KEY_A},tenant_b:{KEY_B}",
    ) as processes:
        yield processes


@pytest.fixture
async def tenant_a(keyed_stack: ProcessStack) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {KEY_A}"}
    async with httpx.AsyncClient(base_url=keyed_stack.base_url, headers=headers, timeout=30) as c:
        yield c


@pytest.fixture
async def tenant_b(keyed_stack: ProcessStack) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {KEY_B}"}
    async with httpx.AsyncClient(base_url=keyed_stack.base_url, headers=headers, timeout=30) as c:
        yield c


def _id() -> str:
    return f"s-{uuid.uuid4().hex[:10]}"


async def _runs(client: httpx.AsyncClient, schedule_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/schedules/{schedule_id}")
    assert response.status_code == 200, response.text
    runs: list[dict[str, Any]] = response.json()["recent_runs"]
    return runs


async def _completed_runs(
    client: httpx.AsyncClient, schedule_id: str, count: int, *, within: float = 60
) -> list[dict[str, Any]]:
    """Wait until `count` runs of the schedule have completed tasks; return those runs."""
    done: list[dict[str, Any]] = []

    async def enough() -> bool:
        done.clear()
        for run in await _runs(client, schedule_id):
            task = await client.get(f"/tasks/{run['task_id']}")
            if task.status_code == 200 and task.json()["status"] == "completed":
                done.append(run)
        return len(done) >= count

    await until(enough, within=within, what=f"{count} completed runs of {schedule_id}")
    return done


async def test_crud_tenancy_validation_and_idempotent_creation(
    tenant_a: httpx.AsyncClient, tenant_b: httpx.AsyncClient
) -> None:
    schedule_id = _id()
    body = {
        "id": schedule_id,
        "type": "demo.pipeline",
        "input": QUICK,
        "cron": "0 3 * * *",
        "timezone": "Europe/Berlin",
        "overlap": "buffer_one",
        "catchup_window": 600,
        "jitter": 5,
        "paused": True,
    }
    created = await tenant_a.post("/schedules", json=body)
    assert created.status_code == 201, created.text
    view = created.json()
    assert created.headers["location"] == f"/schedules/{schedule_id}"
    assert view["paused"] is True
    assert view["cron"] == "0 3 * * *"
    assert view["timezone"] == "Europe/Berlin"
    assert view["overlap"] == "buffer_one"
    assert view["temporal_schedule_id"].startswith("taskplane-schedule-")
    again = await tenant_a.post("/schedules", json=body)
    assert again.status_code == 200
    assert again.json()["id"] == schedule_id
    other = await tenant_a.post("/schedules", json=body | {"input": {"steps": 2}})
    assert other.status_code == 409
    assert other.headers["content-type"].startswith("application/problem+json")

    # Another tenant: the same id is its own schedule; the first is invisible to it.
    listed_b = (await tenant_b.get("/schedules")).json()["schedules"]
    assert schedule_id not in {s["id"] for s in listed_b}
    path = f"/schedules/{schedule_id}"
    assert (await tenant_b.get(path)).status_code == 404
    assert (await tenant_b.patch(path, json={"every": 60})).status_code == 404
    for action in ("pause", "resume", "trigger"):
        assert (await tenant_b.post(f"{path}/{action}")).status_code == 404
    assert (await tenant_b.delete(path)).status_code == 404
    mine = await tenant_b.post("/schedules", json=body)
    assert mine.status_code == 201
    assert mine.json()["temporal_schedule_id"] != view["temporal_schedule_id"]
    assert (await tenant_b.delete(path)).status_code == 204

    listed = (await tenant_a.get("/schedules")).json()["schedules"]
    assert schedule_id in {s["id"] for s in listed}

    # PATCH: `every` replaces `cron`; the pause state stays.
    patched = await tenant_a.patch(path, json={"every": 3600, "input": {"steps": 2}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["every"] == 3600
    assert patched.json()["cron"] is None
    assert patched.json()["input"]["steps"] == 2
    assert patched.json()["paused"] is True
    assert (await tenant_a.patch(path, json={"input": {"steps": "x"}})).status_code == 422
    resumed = await tenant_a.post(f"{path}/resume")
    assert resumed.status_code == 200
    assert resumed.json()["paused"] is False
    assert resumed.json()["next_runs"]
    paused = await tenant_a.post(f"{path}/pause", json={"note": "maintenance"})
    assert paused.json()["paused"] is True
    assert paused.json()["note"] == "maintenance"

    deleted = await tenant_a.delete(path)
    assert deleted.status_code == 204
    assert (await tenant_a.get(path)).status_code == 404
    listed = (await tenant_a.get("/schedules")).json()["schedules"]
    assert schedule_id not in {s["id"] for s in listed}


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"cron": "not a cron"}, "refused"),
        ({"cron": "61 * * * *"}, "refused"),
        ({"type": "no.such.type"}, "unknown task type"),
        ({"input": {"steps": "three"}}, "invalid input"),
        ({"timezone": "Mars/Olympus"}, "time zone"),
        ({"every": 60}, "exactly one"),
        ({"cron": None}, "exactly one"),
        ({"overlap": "sometimes"}, ""),
        ({"unknown": 1}, ""),
    ],
)
async def test_invalid_schedules_are_problems(
    tenant_a: httpx.AsyncClient, change: dict[str, Any], detail: str
) -> None:
    body = {"id": _id(), "type": "demo.pipeline", "input": QUICK, "cron": "*/5 * * * *"}
    response = await tenant_a.post("/schedules", json=body | change)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert detail in response.json()["detail"]
    assert (await tenant_a.get(f"/schedules/{body['id']}")).status_code == 404


async def test_every_fires_ordinary_tasks_with_events(
    tenant_a: httpx.AsyncClient, tenant_b: httpx.AsyncClient
) -> None:
    schedule_id = _id()
    body = {"id": schedule_id, "type": "demo.pipeline", "input": QUICK, "every": 2}
    assert (await tenant_a.post("/schedules", json=body)).status_code == 201
    runs = await _completed_runs(tenant_a, schedule_id, 2)
    assert (await tenant_a.delete(f"/schedules/{schedule_id}")).status_code == 204
    listed = (await tenant_a.get("/tasks", params={"limit": 500})).json()["tasks"]
    listed_ids = {task["task_id"] for task in listed}
    for run in runs:
        task_id = run["task_id"]
        assert str(uuid.UUID(task_id)) == task_id
        assert task_id in listed_ids
        history = (await tenant_a.get(f"/tasks/{task_id}/history")).json()["events"]
        types = [event["type"] for event in history]
        assert types[0] == "task.created.v1"
        assert types[-1] == "task.completed.v1"
        assert history[0]["data"]["owner"] == "tenant_a"
        assert (await tenant_b.get(f"/tasks/{task_id}")).status_code == 404
    # Deleting the schedule left its tasks.
    assert (await tenant_a.get(f"/tasks/{runs[0]['task_id']}")).status_code == 200


async def test_trigger_pause_resume_and_backfill(tenant_a: httpx.AsyncClient) -> None:
    schedule_id = _id()
    body = {
        "id": schedule_id,
        "type": "demo.pipeline",
        "input": QUICK,
        "every": 60,
        "paused": True,
        "overlap": "allow_all",
    }
    path = f"/schedules/{schedule_id}"
    assert (await tenant_a.post("/schedules", json=body)).status_code == 201
    triggered = await tenant_a.post(f"{path}/trigger")
    assert triggered.status_code == 202, triggered.text
    [run] = await _completed_runs(tenant_a, schedule_id, 1)
    assert (await tenant_a.get(f"/tasks/{run['task_id']}")).json()["type"] == "demo.pipeline"

    # Three minutes back: the three fires an every-60-s schedule would have made.
    # Both ends between fire times: whether Temporal counts an end in does not matter.
    end = datetime.now(UTC).replace(second=30, microsecond=0) - timedelta(minutes=10)
    start = end - timedelta(minutes=3)
    window = {"start_at": start.isoformat(), "end_at": end.isoformat()}
    backfilled = await tenant_a.post(f"{path}/backfill", json=window)
    assert backfilled.status_code == 202, backfilled.text
    runs = await _completed_runs(tenant_a, schedule_id, 4)
    due = [r for r in runs if datetime.fromisoformat(r["scheduled_at"]) < end]
    assert len(due) == 3
    assert (
        await tenant_a.post(f"{path}/backfill", json=window | {"end_at": start.isoformat()})
    ).status_code == 422

    resumed = await tenant_a.post(f"{path}/resume")
    assert resumed.json()["paused"] is False
    # Resumed every 2 s: it fires on its own again.
    assert (await tenant_a.patch(path, json={"every": 2})).json()["paused"] is False
    await _completed_runs(tenant_a, schedule_id, 5)
    assert (await tenant_a.post(f"{path}/pause")).json()["paused"] is True
    assert (await tenant_a.delete(path)).status_code == 204


async def test_fires_continue_across_a_worker_restart(
    keyed_stack: ProcessStack, tenant_a: httpx.AsyncClient
) -> None:
    """The schedule lives in Temporal: fires due while no worker runs start once one is
    back, and later ones on time. Lag (start vs due) is bench/schedules.py's figure."""
    schedule_id = _id()
    body = {"id": schedule_id, "type": "demo.pipeline", "input": QUICK, "every": 1}
    assert (await tenant_a.post("/schedules", json=body)).status_code == 201
    await _completed_runs(tenant_a, schedule_id, 1)
    keyed_stack.stop("worker")
    stopped_at = datetime.now(UTC)
    keyed_stack.start("worker")

    # Runs due after the stop: started by the new worker.
    async def after_restart() -> bool:
        runs = await _runs(tenant_a, schedule_id)
        later = [r for r in runs if datetime.fromisoformat(r["scheduled_at"]) > stopped_at]
        for run in later:
            task = await tenant_a.get(f"/tasks/{run['task_id']}")
            if task.status_code != 200 or task.json()["status"] != "completed":
                return False
        return len(later) >= 3

    await until(after_restart, within=90, what="three runs after the worker restart")
    assert (await tenant_a.delete(f"/schedules/{schedule_id}")).status_code == 204


async def test_overlap_cancel_other_cancels_the_running_task(tenant_a: httpx.AsyncClient) -> None:
    """A fire meeting a running one under `cancel_other`: the earlier task is cancelled
    (its run is cancelled, and the task with it), the new one runs."""
    schedule_id = _id()
    body = {
        "id": schedule_id,
        "type": "demo.pipeline",
        "input": {"steps": 1, "step_seconds": 120},
        "every": 3600,
        "paused": True,
        "overlap": "cancel_other",
    }
    path = f"/schedules/{schedule_id}"
    assert (await tenant_a.post("/schedules", json=body)).status_code == 201
    assert (await tenant_a.post(f"{path}/trigger")).status_code == 202
    first: list[str] = []

    async def running() -> bool:
        runs = await _runs(tenant_a, schedule_id)
        if not runs:
            return False
        task = await tenant_a.get(f"/tasks/{runs[0]['task_id']}")
        first[:] = [runs[0]["task_id"]]
        return task.status_code == 200 and task.json()["status"] == "running"

    await until(running, within=60, what="the first fire's task running")
    assert (await tenant_a.post(f"{path}/trigger")).status_code == 202

    async def cancelled() -> bool:
        task = await tenant_a.get(f"/tasks/{first[0]}")
        return bool(task.json()["status"] == "cancelled")

    await until(cancelled, within=60, what="the first fire's task cancelled")
    # The new fire starts once the cancelled run has closed.
    runs: list[dict[str, Any]] = []

    async def second_started() -> bool:
        runs[:] = await _runs(tenant_a, schedule_id)
        return len(runs) == 2

    await until(second_started, within=60, what="the second fire started")
    # Temporal lists recent runs in no order to rely on: the second is the other one.
    [second] = [run["task_id"] for run in runs if run["task_id"] != first[0]]
    assert (await tenant_a.delete(path)).status_code == 204

    async def second_running() -> bool:
        task = await tenant_a.get(f"/tasks/{second}")
        return task.status_code == 200 and task.json()["status"] == "running"

    # The second task runs on (deleting the schedule leaves it): cancel it as any task.
    await until(second_running, within=60, what="the second fire's task running")
    assert (await tenant_a.post(f"/tasks/{second}/cancel")).status_code == 202


async def test_fires_carry_the_schedules_concurrency_key_and_priority(
    services: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A schedule's `concurrency_key` and `priority` reach each fire's task: with a limit
    of 1 per key, two overlapping fires share the key, so the second is queued behind the
    first (its `task.queued.v1` names the key and the priority) and runs after it."""
    with running_stack(
        services,
        tmp_path_factory.mktemp("schedules-flow-logs"),
        api_keys=f"tenant_a:{KEY_A}",
        concurrency_limit="1",
    ) as stack:
        headers = {"Authorization": f"Bearer {KEY_A}"}
        async with httpx.AsyncClient(base_url=stack.base_url, headers=headers, timeout=30) as c:
            schedule_id = _id()
            body = {
                "id": schedule_id,
                "type": "demo.pipeline",
                "input": {"steps": 1, "step_seconds": 3},
                "every": 3600,
                "paused": True,
                "overlap": "allow_all",
                "concurrency_key": "nightly-reports",
                "priority": 2,
            }
            path = f"/schedules/{schedule_id}"
            created = await c.post("/schedules", json=body)
            assert created.status_code == 201, created.text
            assert created.json()["concurrency_key"] == "nightly-reports"
            assert created.json()["priority"] == 2
            runs: list[dict[str, Any]] = []

            async def fired(count: int) -> bool:
                runs[:] = await _runs(c, schedule_id)
                return len(runs) == count

            assert (await c.post(f"{path}/trigger")).status_code == 202
            await until(lambda: fired(1), within=60, what="the first fire")
            # Temporal names a fire's run by the second: the second fire in a later one.
            later = datetime.fromisoformat(runs[0]["started_at"]) + timedelta(seconds=1.1)

            async def next_second() -> bool:
                return datetime.now(UTC) >= later

            await until(next_second, within=10, what="the next second")
            assert (await c.post(f"{path}/trigger")).status_code == 202
            await until(lambda: fired(2), within=60, what="the second fire")
            histories: dict[str, list[dict[str, Any]]] = {}

            async def both_completed() -> bool:
                for run in runs:
                    answer = await c.get(f"/tasks/{run['task_id']}/history")
                    if answer.status_code != 200:
                        return False
                    histories[run["task_id"]] = answer.json()["events"]
                return all(
                    events[-1]["type"] == "task.completed.v1" for events in histories.values()
                )

            await until(both_completed, within=90, what="both fires' tasks completed")
            queued = [
                event["data"]
                for events in histories.values()
                for event in events
                if event["type"] == "task.queued.v1"
            ]
            assert len(queued) == 1, histories
            assert queued[0]["concurrency_key"] == "nightly-reports"
            assert queued[0]["priority"] == 2
            assert queued[0]["limit"] == 1
            assert (await c.delete(path)).status_code == 204


def _cli(stack: ProcessStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "schedules",
            *args,
            "--api",
            stack.base_url,
            "--key",
            KEY_A,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_creates_lists_steers_and_deletes(keyed_stack: ProcessStack) -> None:
    schedule_id = _id()
    created = _cli(
        keyed_stack,
        "create",
        "demo.pipeline",
        "--every",
        "1h",
        "--id",
        schedule_id,
        "--input",
        json.dumps(QUICK),
        "--paused",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["every"] == 3600
    listed = _cli(keyed_stack, "list")
    assert listed.returncode == 0
    assert schedule_id in listed.stdout
    shown = _cli(keyed_stack, "get", schedule_id)
    assert shown.returncode == 0
    assert "paused" in shown.stdout
    assert _cli(keyed_stack, "resume", schedule_id).returncode == 0
    assert _cli(keyed_stack, "pause", schedule_id).returncode == 0
    assert _cli(keyed_stack, "trigger", schedule_id).returncode == 0
    deadline = time.monotonic() + 60
    while True:  # the triggered run shows up with its task
        got = json.loads(_cli(keyed_stack, "get", schedule_id, "--json").stdout)
        if got["recent_runs"]:
            break
        assert time.monotonic() < deadline, "the triggered run never showed"
        time.sleep(0.2)
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    backfill = _cli(
        keyed_stack,
        "backfill",
        schedule_id,
        "--start",
        (end - timedelta(hours=1)).isoformat(),
        "--end",
        end.isoformat(),
    )
    assert backfill.returncode == 0, backfill.stderr
    bad = _cli(keyed_stack, "create", "demo.pipeline", "--cron", "nonsense")
    assert bad.returncode == 2
    assert "refused" in bad.stderr
    assert _cli(keyed_stack, "delete", schedule_id).returncode == 0
    assert _cli(keyed_stack, "get", schedule_id).returncode == 4
