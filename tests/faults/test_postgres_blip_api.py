"""A Postgres blip seen from the API: 503 during it, nothing but 200 after it.

The API reaches the session's Postgres only through a fault proxy. The outage
resets every pooled connection and refuses new ones for two seconds. While it
lasts, what needs Postgres answers 503 problem+json with `Retry-After`; once it
ends, the very next requests succeed (the pool checks each connection before
handing it out, so the dead ones it still holds fail no request), and `/readyz`
says ready again within a second.
"""

from __future__ import annotations

import asyncio
import time

import httpx
from psycopg.conninfo import make_conninfo

from tests.faults.proxy import fault_proxy
from tests.faults.test_postgres_down import unix_socket_of
from tests.integration.live_api import live_api
from tests.metrics_text import sample


async def test_the_api_answers_503_during_a_postgres_blip_and_recovers_at_once(
    database_url: str, redis_url: str, temporal_address: str
) -> None:
    async with fault_proxy(unix=unix_socket_of(database_url)) as proxy:
        proxied = make_conninfo(database_url, host="127.0.0.1", port=proxy.port)
        async with (
            live_api(
                database_url=proxied, redis_url=redis_url, temporal_address=temporal_address
            ) as api,
            httpx.AsyncClient(base_url=api.url, timeout=30) as client,
        ):
            # Every pooled connection has been used once: all of them die in the outage.
            await asyncio.gather(*(client.get("/tasks") for _ in range(8)))
            assert (await client.get("/readyz")).json()["checks"]["postgres"]["status"] == "up"

            errors_before = _postgres_errors((await client.get("/metrics")).text)
            await proxy.outage()
            during = await client.get("/tasks")
            assert during.status_code == 503, during.text
            assert during.headers["content-type"] == "application/problem+json"
            assert int(during.headers["retry-after"]) > 0
            assert during.json()["component"] == "Postgres"
            # One counter for every error: the operator's alert sees the outage.
            assert _postgres_errors((await client.get("/metrics")).text) > errors_before
            readiness = await client.get("/readyz")
            assert readiness.json()["checks"]["postgres"]["status"] == "down"
            await asyncio.sleep(2)

            await proxy.restore()
            restored = time.monotonic()
            while (await client.get("/readyz")).json()["checks"]["postgres"]["status"] != "up":  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            recovered_in = time.monotonic() - restored
            after = await asyncio.gather(*(client.get("/tasks") for _ in range(20)))
            assert [r.status_code for r in after] == [200] * 20
            # Figures, not limits (the machine is shared): how long readiness took to return.
            print(f"readyz recovered {recovered_in:.3f} s after Postgres came back")  # noqa: T201


def _postgres_errors(metrics: str) -> float:
    return sample(metrics, "taskplane_errors_total", component="api", kind="postgres") or 0.0
