"""The local Redis Cluster (devstack/redis_cluster.py) as pytest fixtures.

Without Redis >= 7 (Debian's `redis-server` and `redis-cli`) the cluster tests skip —
or fail, with TASKPLANE_TEST_REQUIRE_REDIS_CLUSTER=1 (as `.ci/run` sets).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from devstack.redis_cluster import ClusterNode, LocalCluster, find_binaries, local_cluster

__all__ = ["ClusterNode", "LocalCluster", "own_cluster", "redis_cluster"]


def cluster_binaries() -> tuple[str, str]:
    """(redis-server, redis-cli) of Redis >= 7, or a skip (a failure when required)."""
    found = find_binaries()
    if isinstance(found, tuple):
        return found
    if os.environ.get("TASKPLANE_TEST_REQUIRE_REDIS_CLUSTER") == "1":
        pytest.fail(found)
    pytest.skip(found)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    """One local cluster shared by the tests that do not harm it (session-wide)."""
    with local_cluster(*cluster_binaries()) as cluster:
        yield cluster


@pytest.fixture
def own_cluster() -> Iterator[LocalCluster]:
    """A cluster of the test's own, for faults (up in ~2 s)."""
    with local_cluster(*cluster_binaries()) as cluster:
        yield cluster
