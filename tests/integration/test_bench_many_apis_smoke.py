"""`bench.many_apis` must not rot: its three rounds, seconds long, on the session's servers.

No timing is asserted: every client opens, none misses a delivery, and nginx deals the
clients out over all three APIs (the access log names each client's API).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.many_apis import measure, parse_args
from bench.stack import Endpoints
from tests.nginx import nginx_or_skip

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
