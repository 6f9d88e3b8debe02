"""`bench.many_apis` must not rot: its three rounds, seconds long, on the session's servers.

No timing is asserted: every client opens, none misses a delivery, and nginx deals the
clients out over all three APIs (the access log names each client's API), on one Redis
and again (`--cluster`) on the session's local Redis Cluster.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.many_apis import measure, parse_args
from bench.stack import Endpoints
from tests.nginx import nginx_or_skip
from tests.redis_cluster import LocalCluster, redis_cluster  # noqa: F401 -- a fixture

pytestmark = pytest.mark.bench


async def test_three_rounds_on_each_broker_deliver_everything_and_nginx_spreads_the_clients(
    database_url: str,
    redis_url: str,
    temporal_address: str,
    redis_cluster: LocalCluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    """`--cluster`: the three rounds on one Redis, then on the cluster with fresh APIs (one
    run covers both brokers: the rounds on one Redis are the same with or without it)."""
    nginx_or_skip()
    args = parse_args(
        ["--cluster", "--clients", "30", "--tasks", "3", "--rate", "30", "--seconds", "1"]
    )
    endpoints = Endpoints(database_url, redis_url, temporal_address)
    result = await measure(endpoints, tmp_path, args, redis_cluster)

    names = ["one API", "three APIs, direct", "three APIs via nginx"]
    rounds = [(r["broker"], r["round"]) for r in result["rounds"]]
    assert rounds == [("one Redis", n) for n in names] + [("Redis Cluster", n) for n in names]
    for figures in result["rounds"]:
        assert figures["clients"] == 30
        assert figures["failed_to_open"] == 0
        assert figures["events_recorded"] == 30
        assert figures["deliveries"] == 300  # 10 events a task, 10 clients a task
        assert figures["missing_deliveries"] == 0
    for on_broker in (result["rounds"][:3], result["rounds"][3:]):
        assert [a["clients"] for a in on_broker[0]["per_api"]] == [30, 0, 0]
        assert [a["clients"] for a in on_broker[1]["per_api"]] == [10, 10, 10]
        proxied = [a["clients"] for a in on_broker[2]["per_api"]]
        assert sum(proxied) == 30
        assert all(count > 0 for count in proxied), proxied
        assert on_broker[2]["nginx_cpu_seconds"] >= 0
