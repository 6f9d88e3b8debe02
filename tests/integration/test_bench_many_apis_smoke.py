"""`bench.many_apis` must not rot: its three rounds, seconds long, on the session's servers.

No timing is asserted: every client opens, none misses a delivery, and nginx deals the
clients out over all three APIs (the access log names each client's API); with
`--cluster`, the same again on the session's local Redis Cluster.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.many_apis import measure, parse_args
from bench.stack import Endpoints
from tests.nginx import nginx_or_skip
from tests.redis_cluster import LocalCluster, redis_cluster  # noqa: F401 -- a fixture

pytestmark = pytest.mark.bench


async def test_three_rounds_deliver_everything_and_nginx_spreads_the_clients(
    database_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    nginx_or_skip()
    args = parse_args(["--clients", "30", "--tasks", "3", "--rate", "30", "--seconds", "1"])
    result = await measure(Endpoints(database_url, redis_url, temporal_address), tmp_path, args)

    rounds = {r["round"]: r for r in result["rounds"]}
    assert list(rounds) == ["one API", "three APIs, direct", "three APIs via nginx"]
    for figures in rounds.values():
        assert figures["clients"] == 30
        assert figures["failed_to_open"] == 0
        assert figures["events_recorded"] == 30
        assert figures["deliveries"] == 300  # 10 events a task, 10 clients a task
        assert figures["missing_deliveries"] == 0
    assert [a["clients"] for a in rounds["one API"]["per_api"]] == [30, 0, 0]
    proxied = [a["clients"] for a in rounds["three APIs via nginx"]["per_api"]]
    assert sum(proxied) == 30
    assert all(count > 0 for count in proxied), proxied
    assert rounds["three APIs via nginx"]["nginx_cpu_seconds"] >= 0


async def test_cluster_rounds_deliver_everything_on_the_redis_cluster(
    database_url: str,
    redis_url: str,
    temporal_address: str,
    redis_cluster: LocalCluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    """`--cluster`: the three rounds on one Redis, then on the cluster with fresh APIs."""
    nginx_or_skip()
    args = parse_args(
        ["--cluster", "--clients", "12", "--tasks", "3", "--rate", "12", "--seconds", "1"]
    )
    endpoints = Endpoints(database_url, redis_url, temporal_address)
    result = await measure(endpoints, tmp_path, args, redis_cluster)

    rounds = [(r["broker"], r["round"]) for r in result["rounds"]]
    names = ["one API", "three APIs, direct", "three APIs via nginx"]
    assert rounds == [("one Redis", n) for n in names] + [("Redis Cluster", n) for n in names]
    for figures in result["rounds"]:
        assert figures["clients"] == 12
        assert figures["failed_to_open"] == 0
        assert figures["events_recorded"] == 12
        assert figures["deliveries"] == 48  # 4 events a task, 4 clients a task
        assert figures["missing_deliveries"] == 0
    on_cluster = result["rounds"][3:]
    assert [a["clients"] for a in on_cluster[0]["per_api"]] == [12, 0, 0]
    assert [a["clients"] for a in on_cluster[1]["per_api"]] == [4, 4, 4]
    assert sum(a["clients"] for a in on_cluster[2]["per_api"]) == 12
