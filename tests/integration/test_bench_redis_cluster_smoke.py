"""`python -m bench.redis_cluster` must not rot: its bus and balance parts, small, on the
session's local cluster. The bus counts are exact (the cluster's own counters of
publish messages, gossip excluded): classic PUBLISH goes to every other node, SPUBLISH
only to the shard's replica. No timing is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.redis_cluster import balance
from tests.redis_cluster import LocalCluster, cluster_binaries, redis_cluster  # noqa: F401 -- a fixture

pytestmark = pytest.mark.bench


# In a process and on a cluster of its own, as `python -m bench.redis_cluster` runs.
BUS_SCRIPT = """
import asyncio, json, sys
from bench.redis_cluster import bus_messages
from devstack.redis_cluster import local_cluster
with local_cluster(sys.argv[1], sys.argv[2]) as cluster:
    print(json.dumps(asyncio.run(bus_messages(cluster, 50))))
"""


def test_bus_messages_per_event_classic_against_sharded() -> None:
    server, cli = cluster_binaries()
    done = subprocess.run(
        [sys.executable, "-c", BUS_SCRIPT, server, cli],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["classic"]["publish_bus_messages_per_event"] == 5.0  # 6 nodes: 5 others
    # SPUBLISH goes to its shard's one replica only. (It read 0.0 when counted before the
    # primaries knew their replicas: `LocalCluster.healthy` now waits for that.)
    assert figures["sharded"]["publish_bus_messages_per_event"] == 1.0


async def test_balance_figures_cover_every_primary(
    redis_cluster: LocalCluster,  # noqa: F811
) -> None:
    figures = await balance(redis_cluster, tasks=12, events=2, topics=300)
    primaries = {node.port for node in redis_cluster.primaries()}
    assert set(figures["channels_per_primary"]) == primaries
    assert figures["partitions_per_primary"] == dict.fromkeys(primaries, 4)
    assert sum(figures["entries_per_primary"].values()) >= 12 * 2
