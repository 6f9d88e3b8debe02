"""A Redis Cluster primary fails while tasks run → every event still reaches every SSE client
once and in order, the durable handler once, and the streams go on on the new primary.

The worker and the API run with `TASKPLANE_REDIS_CLUSTER=true` on a local cluster of the
test's own (3 primaries + 3 replicas, `cluster-node-timeout` 2 s, tests/redis_cluster.py).
The primary that serves the first task's live channel is

- killed (SIGKILL): its replica takes over after the node timeout;
- stopped (SIGSTOP) for 10 s: its replica takes over; resumed, it rejoins as a replica;
- handed over (`CLUSTER FAILOVER` sent to its replica): no write is lost.

Live messages published while a shard has no primary are lost (Redis pub/sub is at most
once); the SSE streams are told to resync and read them from the store. The publishes
that failed meanwhile wait in the outbox for the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool
from redis.asyncio.cluster import RedisCluster

from broker import topic_for
from broker.cluster_streams import Partitions
from broker.cluster_topology import slot_of
from tests.faults.harness import (
    BrokerStreamView,
    SSEWatcher,
    collector,
    create_task,
    fault_settings,
    watch,
    worker_and_api,
)
from tests.invariants import Event, load_history, wait_until_delivered
from tests.metrics_text import required
from tests.polling import until
from tests.redis_cluster import ClusterNode, LocalCluster, own_cluster  # noqa: F401 -- fixture

TASK = {"steps": 10, "step_seconds": 0.5, "progress_ticks": 2}
STOPPED_SECONDS = 10.0


class ClusterStreamView(BrokerStreamView):
    """`BrokerStreamView` over every partition stream of the cluster broker."""

    def __init__(self, url: str, partitions: Partitions) -> None:
        self._cluster = RedisCluster.from_url(url, decode_responses=True)
        self._partitions = partitions
        self._marks: dict[int, str] = {}

    async def mark(self) -> None:
        for index in self._partitions:
            newest: Any = await self._cluster.xrevrange(self._partitions.key(index), count=1)
            self._marks[index] = newest[0][0] if newest else "0-0"

    async def events(self, task_ids: Any) -> list[Event]:
        wanted = set(task_ids)
        found: list[Event] = []
        for index in self._partitions:
            try:
                entries: Any = await self._cluster.xrange(
                    self._partitions.key(index), min=f"({self._marks.get(index, '0-0')}"
                )
            except Exception:
                return []
            for _, fields in entries:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    found.append(Event.from_envelope(fields["payload"]))
        return [e for e in found if e.task_id in wanted]

    async def group_ready(self, group: str, within: float = 20) -> None:
        async def exists() -> bool:
            with contextlib.suppress(Exception):
                for index in self._partitions:
                    groups: Any = await self._cluster.xinfo_groups(self._partitions.key(index))
                    if not any(g["name"] == group for g in groups):
                        return False
                return True
            return False

        await until(exists, within=within, what=f"consumer group {group} on every partition")

    async def close(self) -> None:
        await self._cluster.aclose()


def _inject(cluster: LocalCluster, fault: str, victim: ClusterNode) -> None:
    """Break `victim` the way `fault` says; return once a replica serves its slots."""
    (replica,) = cluster.replicas_of(victim)
    if fault == "sigkill":
        os.kill(victim.pid, signal.SIGKILL)
    elif fault == "sigstop":
        stopped_at = time.monotonic()
        os.kill(victim.pid, signal.SIGSTOP)
    else:
        with replica.client() as client:
            client.execute_command("CLUSTER", "FAILOVER")
    deadline = time.monotonic() + 30
    while cluster.role(replica) != "master":
        assert time.monotonic() < deadline, f"{replica.port} never took over from {victim.port}"
        time.sleep(0.05)
    if fault == "sigstop":
        time.sleep(max(0.0, STOPPED_SECONDS - (time.monotonic() - stopped_at)))  # the fault
        os.kill(victim.pid, signal.SIGCONT)
    cluster.wait_healthy(within=30)


@pytest.mark.parametrize("fault", ["sigkill", "sigstop", "failover"])
async def test_a_primary_fails_and_every_event_still_reaches_every_observer(
    fault: str,
    own_cluster: LocalCluster,  # noqa: F811
    truth: AsyncConnectionPool,
    fault_db: str,
    temporal_address: str,
) -> None:
    settings = fault_settings(
        database_url=fault_db,
        redis_url=own_cluster.url,
        redis_cluster=True,
        temporal_address=temporal_address,
        relay_backlog_seconds=0.2,
    )
    group = f"faults-cluster-{settings.task_queue}"
    stream = ClusterStreamView(
        own_cluster.url, Partitions("taskplane:events", settings.redis_cluster_partitions)
    )
    watchers: list[SSEWatcher] = []
    try:
        async with worker_and_api(
            settings, stream, group=group, sse_heartbeat_seconds=0.5, redis_cluster=True
        ) as (worker, http):
            task_ids = [await create_task(http, TASK) for _ in range(4)]
            watchers.extend(w for task_id in task_ids for w in watch(http, task_id))

            async def all_running() -> bool:
                return len(await load_history(truth, task_ids)) >= 3 * len(task_ids)

            await until(all_running, within=30)
            victim = own_cluster.primary_serving(slot_of(topic_for(task_ids[0])))
            await asyncio.to_thread(_inject, own_cluster, fault, victim)

            collect = collector(truth, task_ids, watchers, group, stream)
            history, _ = await wait_until_delivered(collect, tasks=task_ids, within=90)
            last = {e.task_id: e.type for e in history}
            assert set(last.values()) == {"task.completed.v1"}
            for watcher in watchers:
                assert (watcher.status, watcher.error) == (200, None)
            assert worker.broker.stats().dead_lettered == 0
            # The API's live fan-out left the victim: its subscribers were told to resync.
            scrape = (await http.get("/metrics")).text
            assert required(scrape, "taskplane_broker_reconnects_total") >= 1
            assert required(scrape, "taskplane_broker_resyncs_total") >= 1
    finally:
        for watcher in watchers:
            await watcher.stop()
        await stream.close()
