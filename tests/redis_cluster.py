"""The local Redis Cluster (devstack/redis_cluster.py) as pytest fixtures.

Without Redis >= 7 (Debian's `redis-server` and `redis-cli`) the cluster tests skip —
or fail, with TASKPLANE_TEST_REQUIRE_REDIS_CLUSTER=1 (as `.ci/run` sets).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from devstack.redis_cluster import ClusterNode, LocalCluster, find_binaries, local_cluster

__all__ = ["ClusterNode", "LocalCluster", "break_primary", "own_cluster", "redis_cluster"]

STOPPED_SECONDS = 10.0


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


def break_primary(cluster: LocalCluster, fault: str, victim: ClusterNode) -> None:
    """Break `victim` the way `fault` says (sigkill, sigstop for STOPPED_SECONDS, or failover:
    `CLUSTER FAILOVER` sent to its replica); return once the cluster is healthy again."""
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
