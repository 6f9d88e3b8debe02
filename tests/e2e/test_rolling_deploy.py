"""A rolling deploy with Temporal Worker Versioning on the real dev server.

Worker version `a` is current; a pinned task and an auto-upgraded task start on it
and wait for their input. Version `b` comes up and is made current
(`temporal worker deployment set-current-version`): the pinned task still ends on
`a`, the auto-upgraded one moves to `b` at its next workflow task, a new task runs
on `b`; then `a` stops. `served_by` in each result names the build that ran its end.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import VersioningBehavior

from schemas.workflow import workflow_id_for
from settings import Settings
from store import open_pool
from temporal.client import connect_client
from tests.e2e.conftest import ProcessStack
from tests.e2e.operator_cli import temporal_cli
from tests.invariants import find_violations, load_history
from tests.polling import until
from tests.rollout_plugin import ROLLOUT_APPROVAL

log = logging.getLogger(__name__)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


class Version:
    """One build's worker and API processes (the API decides pin or auto-upgrade)."""

    def __init__(self, services: Any, log_dir: Path, **settings: str) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stack = ProcessStack(services, log_dir, worker_versioning="on", **settings)

    @property
    def url(self) -> str:
        return self.stack.base_url


@pytest.fixture
def deployment(services: Any, tmp_path: Path) -> Iterator[tuple[Version, Version]]:
    name = f"rollout-{uuid.uuid4().hex[:8]}"
    queue = f"e2e-rollout-{uuid.uuid4().hex[:8]}"
    common = {"worker_deployment_name": name, "task_queue": queue}
    v1 = Version(services, tmp_path / "a", worker_build_id="a", **common)
    # v2's API starts `rollout.approval` tasks auto-upgraded; v1's pins them (the default).
    v2 = Version(
        services,
        tmp_path / "b",
        worker_build_id="b",
        worker_auto_upgrade_types=ROLLOUT_APPROVAL,
        **common,
    )
    try:
        yield v1, v2
    finally:
        v2.stack.stop_all()
        v1.stack.stop_all()


async def set_current(address: str, deployment_name: str, build_id: str) -> None:
    """Make `build_id` current once its worker has polled (the version exists then)."""

    async def done() -> bool:
        try:
            await temporal_cli(
                address,
                *("worker", "deployment", "set-current-version"),
                *("--deployment-name", deployment_name, "--build-id", build_id, "--yes"),
            )
        except AssertionError:  # not polled yet
            return False
        return True

    await until(done, within=60, what=f"version {build_id} to become current")


async def start_waiting(client: httpx.AsyncClient) -> str:
    body = {"type": ROLLOUT_APPROVAL, "input": {"step_seconds": 0}}
    created = await client.post("/tasks", json=body)
    assert created.status_code == 202, created.text
    task_id: str = created.json()["task_id"]

    async def waiting() -> bool:
        status: str = (await client.get(f"/tasks/{task_id}")).json()["status"]
        return status == "waiting"

    await until(waiting, within=60, what="the task to wait for its input")
    return task_id


async def approve_and_finish(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    answered = await client.post(f"/tasks/{task_id}/inputs/approve", json={"approved": True})
    assert answered.status_code in (200, 202), answered.text

    async def ended() -> bool:
        status: str = (await client.get(f"/tasks/{task_id}")).json()["status"]
        return status == "completed"

    await until(ended, within=60, what="the task to complete")
    result: dict[str, Any] = (await client.get(f"/tasks/{task_id}")).json()["result"]
    return result


async def test_pinned_tasks_finish_on_their_version_while_the_next_one_serves(
    deployment: tuple[Version, Version], services: Any
) -> None:
    v1, v2 = deployment
    address = services.temporal_address
    name = v1.stack.env["TASKPLANE_WORKER_DEPLOYMENT_NAME"]
    timings: dict[str, float] = {}
    v1.stack.start("tests.rollout_worker")
    v1.stack.start("tests.rollout_api")
    v2.stack.start("tests.rollout_api")  # its worker comes later
    v1.stack.wait_ready()
    v2.stack.wait_ready()
    await set_current(address, name, "a")

    async with (
        httpx.AsyncClient(base_url=v1.url, timeout=30) as api1,
        httpx.AsyncClient(base_url=v2.url, timeout=30) as api2,
    ):
        pinned = await start_waiting(api1)
        upgraded = await start_waiting(api2)

        began = time.monotonic()
        v2.stack.start("tests.rollout_worker")
        await set_current(address, name, "b")
        timings["b current after its start"] = time.monotonic() - began

        new = await start_waiting(api1)
        assert (await approve_and_finish(api1, upgraded))["served_by"] == "b"
        assert (await approve_and_finish(api1, new))["served_by"] == "b"
        assert (await approve_and_finish(api1, pinned))["served_by"] == "a"

        client = await connect_client(Settings(temporal_address=address))
        versions = {}
        for task_id in (pinned, upgraded, new):
            described = await client.get_workflow_handle(workflow_id_for(task_id)).describe()
            info = described.raw_description.workflow_execution_info.versioning_info
            versions[task_id] = (info.behavior, info.deployment_version.build_id)
        assert versions[pinned] == (VersioningBehavior.VERSIONING_BEHAVIOR_PINNED, "a")
        assert versions[new] == (VersioningBehavior.VERSIONING_BEHAVIOR_PINNED, "b")
        assert versions[upgraded][1] == "b"

        # `a` is no longer current: the server says it drains (or has drained already).
        drainage = await temporal_cli(
            address,
            *("worker", "deployment", "describe-version", "--output", "json"),
            *("--deployment-name", name, "--build-id", "a"),
        )
        assert "draining" in drainage.lower() or "drained" in drainage.lower(), drainage
        v1.stack.stop("tests.rollout_worker")
        pool = await open_pool(services.database_url, min_size=1, max_size=2)
        try:
            history = await load_history(pool, [pinned, upgraded, new])
        finally:
            await pool.close()
        assert find_violations(history, tasks=[pinned, upgraded, new]) == []
    log.info("rollout timings: %s", timings)  # figures for the report, never asserted
