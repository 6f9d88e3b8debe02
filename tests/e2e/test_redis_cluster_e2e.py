"""The worker and the API as processes on a Redis Cluster (`TASKPLANE_REDIS_CLUSTER=true`).

`TASKPLANE_REDIS_URL` names one node of the local cluster (3 primaries + 3 replicas,
tests/redis_cluster.py). Tasks run through the API and the worker; two SSE clients per
task get every event once and in order (tests/invariants.py); the events went through
the partition streams, which sit on every primary.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool
from redis.asyncio.cluster import RedisCluster

from broker import topic_for
from broker.cluster_streams import Partitions
from settings import Settings
from store import open_pool
from tests.e2e.conftest import ProcessStack, running_stack
from tests.invariants import Event, Observer, check_delivery, load_history
from tests.redis_cluster import LocalCluster, redis_cluster  # noqa: F401 -- a fixture
from tests.sse import collect_events, payload

pytestmark = pytest.mark.e2e

TASKS = 6
CLIENTS = 2


@pytest.fixture(scope="module")
def cluster_stack(
    services: Any,
    redis_cluster: LocalCluster,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ProcessStack]:
    with running_stack(
        services,
        tmp_path_factory.mktemp("e2e-cluster"),
        redis_url=redis_cluster.url,
        redis_cluster="true",
    ) as processes:
        yield processes


@pytest.fixture
async def truth(cluster_stack: ProcessStack) -> AsyncIterator[AsyncConnectionPool]:
    pool = await open_pool(cluster_stack.env["TASKPLANE_DATABASE_URL"], min_size=1, max_size=2)
    yield pool
    await pool.close()


async def test_tasks_stream_every_event_once_in_order_on_a_cluster(
    cluster_stack: ProcessStack,
    truth: AsyncConnectionPool,
    redis_cluster: LocalCluster,  # noqa: F811
) -> None:
    observers: list[Observer] = []
    task_ids: list[str] = []
    async with httpx.AsyncClient(base_url=cluster_stack.base_url, timeout=30) as client:

        async def one() -> None:
            response = await client.post(
                "/tasks",
                json={
                    "type": "demo.pipeline",
                    "input": {"steps": 3, "step_seconds": 0.2, "progress_ticks": 3},
                },
            )
            assert response.status_code == 202, response.text
            task_id = response.json()["task_id"]
            task_ids.append(task_id)
            streams = await asyncio.gather(
                *(collect_events(client, f"/tasks/{task_id}/events") for _ in range(CLIENTS))
            )
            for n, (status, frames) in enumerate(streams):
                assert status == 200
                assert frames[-1].event == "task.completed.v1"
                observers.append(
                    Observer.sse(f"sse {n} of {task_id[:8]}", task_id, map(payload, frames))
                )

        await asyncio.gather(*(one() for _ in range(TASKS)))

    check_delivery(await load_history(truth, task_ids), observers, tasks=task_ids)

    # Durable: each task's events are in its topic's partition stream, in order.
    partitions = Partitions("taskplane:events", Settings().redis_cluster_partitions)
    history = await load_history(truth, task_ids)
    cluster = RedisCluster.from_url(redis_cluster.url, decode_responses=True)
    try:
        for task_id in task_ids:
            key = partitions.key(partitions.of(topic_for(task_id)))
            entries: Any = await cluster.xrange(key)
            streamed = [
                Event.from_envelope(fields["payload"])
                for _, fields in entries
                if fields.get("topic") == topic_for(task_id)
            ]
            # At least once (the relay may publish an event again): first sightings in order.
            first_seen = list(dict.fromkeys(e.event_id for e in streamed))
            assert first_seen == [e.event_id for e in history if e.task_id == task_id]
    finally:
        await cluster.aclose()
