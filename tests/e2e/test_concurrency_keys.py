"""Concurrency keys with the real processes (API, worker) on the real servers: the limit
holds, sampled every 100 ms, while a worker is SIGKILLed and restarted and an operator
terminates a running task with the `temporal` CLI; the reconciler frees the slot of the
terminated run and the next queued task starts; every task ends, no slot is left held.
The status `queued` is in the task resource, the list filter and the stream's events."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from schemas.workflow import workflow_id_for
from store import open_pool
from tests.e2e.conftest import ProcessStack, running_stack
from tests.e2e.operator_cli import address_of, temporal_cli
from tests.polling import until

pytestmark = pytest.mark.e2e

LIMIT = 2
# Tasks of the key that run a step now: started one, not ended (the store's truth).
_RUNNING = """
SELECT count(*) FROM tasks t
WHERE t.task_id = ANY(%(ids)s)
  AND t.status NOT IN ('completed', 'failed', 'cancelled', 'terminated')
  AND EXISTS (SELECT 1 FROM events e
              WHERE e.task_id = t.task_id AND e.event_type = 'task.step.started.v1')
"""
_HOLDERS = (
    "SELECT count(*) FROM admission_tickets WHERE concurrency_key = %(key)s AND state = 'running'"
)
_TICKETS = "SELECT count(*) FROM admission_tickets WHERE concurrency_key = %(key)s"


@contextlib.contextmanager
def limited_stack(services: Any, folder: Path, **settings: str) -> Iterator[ProcessStack]:
    """The real processes with a limit of LIMIT per key and a keeper that acts fast."""
    with running_stack(
        services,
        folder,
        concurrency_limit=str(LIMIT),
        reconcile_interval_seconds="0.5",
        admission_check_after_seconds="1",
        **settings,
    ) as processes:
        yield processes


@contextlib.asynccontextmanager
async def store_of(stack: ProcessStack) -> AsyncIterator[AsyncConnectionPool]:
    pool = await open_pool(stack.env["TASKPLANE_DATABASE_URL"], min_size=1, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture(scope="module")
def limited(services: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessStack]:
    with limited_stack(services, tmp_path_factory.mktemp("e2e-concurrency")) as processes:
        yield processes


@pytest.fixture
async def db(limited: ProcessStack) -> AsyncIterator[AsyncConnectionPool]:
    async with store_of(limited) as pool:
        yield pool


async def scalar(pool: AsyncConnectionPool, statement: str, params: dict[str, Any]) -> int:
    async with pool.connection() as conn:
        row = await (await conn.execute(statement, params)).fetchone()
    assert row is not None
    return int(row[0])


class Sampler:
    """Slot holders and tasks in a step of one key, every 100 ms, while it runs."""

    def __init__(self, pool: AsyncConnectionPool, key: str) -> None:
        self.pool, self.key = pool, key
        self.ids: list[str] = []
        self.max_holders = self.max_running = self.samples = 0

    async def run(self) -> None:
        while True:
            params = {"key": self.key, "ids": list(self.ids)}
            self.max_holders = max(self.max_holders, await scalar(self.pool, _HOLDERS, params))
            self.max_running = max(self.max_running, await scalar(self.pool, _RUNNING, params))
            self.samples += 1
            await asyncio.sleep(0.1)


VICTIM_STEPS = 60  # 60 s of steps: the terminate always finds it running


async def create(client: httpx.AsyncClient, key: str, steps: int = 2) -> str:
    body = {
        "type": "demo.pipeline",
        "input": {"steps": steps, "step_seconds": 1.0},
        "concurrency_key": key,
    }
    response = await client.post("/tasks", json=body)
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


async def test_the_limit_holds_across_a_worker_kill_and_a_terminate(
    limited: ProcessStack, db: AsyncConnectionPool
) -> None:
    key = f"e2e-{uuid.uuid4().hex[:8]}"
    sampler = Sampler(db, key)
    sampling = asyncio.create_task(sampler.run())
    try:
        async with httpx.AsyncClient(base_url=limited.base_url, timeout=30) as client:
            # The task to terminate runs far longer than the others, so that it is
            # still running whenever the CLI reaches it (a 2-step one could finish first).
            victim = await create(client, key, steps=VICTIM_STEPS)
            sampler.ids.append(victim)
            for _ in range(6):
                sampler.ids.append(await create(client, key))
            # Which two start first is the dispatch's choice; the other four wait.
            queued = await _with_status(client, sampler.ids, "queued", len(sampler.ids) - LIMIT)
            listed = await client.get("/tasks", params={"status": "queued", "limit": 100})
            assert set(queued) <= {t["task_id"] for t in listed.json()["tasks"]}
            limited.stop("worker", kill=True)
            limited.start("worker")
            await _with_status(client, sampler.ids, "completed", 1, within=90)
            await _a_task_in_a_step(db, [victim])
            await temporal_cli(
                address_of(limited),
                *("workflow", "terminate", "--workflow-id", workflow_id_for(victim)),
                *("--reason", "operator check"),
            )
            statuses = {}
            for task_id in sampler.ids:
                statuses[task_id] = await _ended(client, task_id)
        assert statuses.pop(victim) == "terminated"
        assert set(statuses.values()) == {"completed"}

        async def slots_free() -> bool:
            return await scalar(db, _TICKETS, {"key": key}) == 0

        await until(slots_free, within=30, what="every slot of the key to be given back")
    finally:
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
    assert sampler.samples > 10
    assert sampler.max_holders == LIMIT  # used to the full, never above
    assert sampler.max_running <= LIMIT


async def _with_status(
    client: httpx.AsyncClient, ids: list[str], status: str, count: int, within: float = 60
) -> list[str]:
    """The tasks of `ids` in `status`, once at least `count` of them are."""
    found: list[str] = []

    async def enough() -> bool:
        views = [(await client.get(f"/tasks/{task_id}")).json() for task_id in ids]
        found[:] = [v["task_id"] for v in views if v["status"] == status]
        return len(found) >= count

    await until(enough, within=within, what=f"{count} tasks {status}")
    return found


async def _a_task_in_a_step(pool: AsyncConnectionPool, ids: list[str]) -> str:
    found: list[str] = []

    async def in_step() -> bool:
        async with pool.connection() as conn:
            cursor = await conn.execute(
                _RUNNING.replace("SELECT count(*)", "SELECT t.task_id"), {"ids": ids}
            )
            found[:] = [str(r[0]) for r in await cursor.fetchall()]
        return bool(found)

    await until(in_step, within=60, what="a task of the key in a step")
    return found[0]


async def _ended(client: httpx.AsyncClient, task_id: str) -> str:
    seen: list[str] = []

    async def ended() -> bool:
        seen.append((await client.get(f"/tasks/{task_id}")).json()["status"])
        return seen[-1] in {"completed", "failed", "cancelled", "terminated"}

    await until(ended, within=120, what=f"task {task_id} to end")
    return seen[-1]
