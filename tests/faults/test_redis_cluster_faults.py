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

import pytest
from psycopg_pool import AsyncConnectionPool

from broker import topic_for
from broker.cluster_streams import Partitions
from broker.cluster_topology import slot_of
from tests.faults.cluster_stream import ClusterStreamView
from tests.faults.harness import (
    SSEWatcher,
    collector,
    create_task,
    fault_settings,
    watch,
    worker_and_api,
)
from tests.invariants import load_history, wait_until_delivered
from tests.metrics_text import required
from tests.polling import until
from tests.redis_cluster import LocalCluster, break_primary, own_cluster  # noqa: F401 -- fixture

TASK = {"steps": 10, "step_seconds": 0.5, "progress_ticks": 2}


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
            await asyncio.to_thread(break_primary, own_cluster, fault, victim)

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
