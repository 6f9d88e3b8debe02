"""The combined stack of issue 25 (item 6): 3 APIs + 2 workers behind nginx on a Redis
Cluster of 3 primaries + 3 replicas (`TASKPLANE_REDIS_CLUSTER=true`), under faults in
sequence: a primary SIGKILLed mid-run, a primary SIGSTOPped for 10 s, `CLUSTER FAILOVER`,
an API SIGKILLed, a worker SIGKILLed.

In every phase tasks run with two SSE clients each through the proxy (spread over the
APIs); a client whose stream is cut resumes by Last-Event-ID through the proxy. After each
fault every client got every event of its task once, in order (tests/invariants.py
against the store).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from broker import topic_for
from broker.cluster_topology import slot_of
from store import open_pool
from tests.invariants import Observer, check_delivery, load_history
from tests.nginx import ManyProcesses, many_processes
from tests.polling import until
from tests.redis_cluster import LocalCluster, break_primary, own_cluster  # noqa: F401 -- fixture
from tests.sse import Frame, payload, read_frames

pytestmark = pytest.mark.e2e

TASKS = 3
CLIENTS = 2
PIPELINE = {"steps": 3, "step_seconds": 1, "progress_ticks": 3}


@pytest.fixture
def combined(
    services: Any,
    own_cluster: LocalCluster,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ManyProcesses]:
    with many_processes(
        services,
        tmp_path_factory.mktemp("e2e-cluster-stack"),
        redis_url=own_cluster.url,
        redis_cluster="true",
        sse_heartbeat_seconds="1",
    ) as stack:
        yield stack


@pytest.fixture
async def store(services: Any) -> AsyncIterator[AsyncConnectionPool]:
    pool = await open_pool(services.database_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


async def follow(http: httpx.AsyncClient, task_id: str) -> list[Frame]:
    """The task's events through the proxy to its end, resuming by Last-Event-ID whenever
    the stream is cut (its API died)."""
    frames: list[Frame] = []
    while not frames or frames[-1].event != "task.completed.v1":
        headers = {"Last-Event-ID": frames[-1].id or "0"} if frames else {}
        try:
            async with http.stream(
                "GET", f"/tasks/{task_id}/events", headers=headers, timeout=120
            ) as response:
                assert response.status_code == 200
                async for frame in read_frames(response):
                    if frame.is_event:
                        frames.append(frame)
        except httpx.HTTPError:
            await asyncio.sleep(0.2)  # the proxy moves to another API on the next request
    return frames


async def phase(http: httpx.AsyncClient, store: AsyncConnectionPool, fault: Any, name: str) -> None:
    """Tasks and their clients; `fault(task_ids)` once every task runs; then the invariants."""
    task_ids: list[str] = []
    for _ in range(TASKS):
        created = await http.post("/tasks", json={"type": "demo.pipeline", "input": PIPELINE})
        assert created.status_code == 202, created.text
        task_ids.append(created.json()["task_id"])
    readers = [
        asyncio.create_task(follow(http, task_id)) for task_id in task_ids for _ in range(CLIENTS)
    ]

    async def all_running() -> bool:
        return len(await load_history(store, task_ids)) >= 2 * len(task_ids)

    await until(all_running, within=60, what=f"{name}: every task to run")
    await fault(task_ids)
    seen = await asyncio.wait_for(asyncio.gather(*readers), timeout=120)
    history = await load_history(store, task_ids)
    check_delivery(
        history,
        [
            Observer.sse(
                f"{name}: client {n} of {task_ids[n // CLIENTS][:8]}",
                task_ids[n // CLIENTS],
                [payload(f) for f in frames],
            )
            for n, frames in enumerate(seen)
        ],
        tasks=task_ids,
    )


async def test_the_combined_stack_delivers_every_event_once_in_order_through_faults(
    combined: ManyProcesses,
    own_cluster: LocalCluster,  # noqa: F811
    store: AsyncConnectionPool,
) -> None:
    def primary_fault(kind: str) -> Any:
        async def inject(task_ids: list[str]) -> None:
            victim = own_cluster.primary_serving(slot_of(topic_for(task_ids[0])))
            await asyncio.to_thread(break_primary, own_cluster, kind, victim)
            if kind == "sigkill":  # back as a replica, so the next fault has one to promote
                await asyncio.to_thread(own_cluster.restart, victim)
                await asyncio.to_thread(own_cluster.wait_healthy)

        return inject

    async def kill_api(task_ids: list[str]) -> None:
        await asyncio.to_thread(combined.kill_api, 0)
        await asyncio.to_thread(combined.restart_api, 0)

    async def kill_worker(task_ids: list[str]) -> None:
        victim = combined.workers[0]
        await asyncio.to_thread(victim.stop, "worker", kill=True)
        victim.start("worker")

    async with httpx.AsyncClient(base_url=combined.url, timeout=30) as http:
        for name, fault in [
            ("sigkill primary", primary_fault("sigkill")),
            ("sigstop primary", primary_fault("sigstop")),
            ("cluster failover", primary_fault("failover")),
            ("sigkill api", kill_api),
            ("sigkill worker", kill_worker),
        ]:
            await phase(http, store, fault, name)
