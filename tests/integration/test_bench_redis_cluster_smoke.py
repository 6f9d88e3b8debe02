"""`python -m bench.redis_cluster` must not rot: its bus and balance parts, small, on the
session's local cluster. The bus counts are exact (the cluster's own counters of
publish messages, gossip excluded): classic PUBLISH goes to every other node, SPUBLISH
only to the shard's replica. No timing is asserted.
"""

from __future__ import annotations

import pytest

from bench.redis_cluster import balance, bus_messages
from tests.redis_cluster import LocalCluster, own_cluster, redis_cluster  # noqa: F401 -- fixtures

pytestmark = pytest.mark.bench


async def test_bus_messages_per_event_classic_against_sharded(
    own_cluster: LocalCluster,  # noqa: F811
) -> None:
    # A cluster of its own: the counts are exact only while every shard has its replica
    # linked and nothing else publishes. On the session's shared cluster, after the e2e
    # tests, SPUBLISH once counted 0.0 bus messages (a shard without a linked replica).
    figures = await bus_messages(own_cluster, 50)
    assert figures["classic"]["publish_bus_messages_per_event"] == 5.0  # 6 nodes: 5 others
    assert figures["sharded"]["publish_bus_messages_per_event"] == 1.0  # its one replica


async def test_balance_figures_cover_every_primary(
    redis_cluster: LocalCluster,  # noqa: F811
) -> None:
    figures = await balance(redis_cluster, tasks=12, events=2, topics=300)
    primaries = {node.port for node in redis_cluster.primaries()}
    assert set(figures["channels_per_primary"]) == primaries
    assert figures["partitions_per_primary"] == dict.fromkeys(primaries, 4)
    assert sum(figures["entries_per_primary"].values()) >= 12 * 2
