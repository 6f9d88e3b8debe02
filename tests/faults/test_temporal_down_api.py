"""Temporal unreachable from the API → 503 problem+json with Retry-After, never a 500.

The API reaches the real Temporal server only through a fault proxy this test
controls. During the outage, creating a task and looking up one that only
Temporal knows answer 503 with `Retry-After`; what needs only the store still
answers; after the outage everything works again.
"""

from __future__ import annotations

import httpx

from tests.faults.proxy import fault_proxy
from tests.integration.live_api import live_api

PIPELINE = {"type": "demo.pipeline", "input": {"steps": 1, "step_seconds": 0}}


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    body = response.json()
    assert body["status"] == 503
    assert body["component"] == "Temporal"


async def test_the_api_answers_503_while_temporal_is_unreachable(
    database_url: str, redis_url: str, temporal_address: str
) -> None:
    host, port = temporal_address.rsplit(":", 1)
    async with (
        fault_proxy(host=host, port=int(port)) as proxy,
        live_api(
            database_url=database_url,
            redis_url=redis_url,
            temporal_address=f"127.0.0.1:{proxy.port}",
            task_queue="nobody-serves-this-queue",  # the task stays pending: Temporal knows it
        ) as api,
        httpx.AsyncClient(base_url=api.url, timeout=60) as client,
    ):
        created = await client.post("/tasks", json=PIPELINE)
        assert created.status_code == 202, created.text
        task_id = created.json()["task_id"]
        assert (await client.get(f"/tasks/{task_id}")).json()["status"] == "pending"

        await proxy.outage()
        _assert_unavailable(await client.post("/tasks", json=PIPELINE))
        _assert_unavailable(await client.get(f"/tasks/{task_id}"))
        _assert_unavailable(await client.post(f"/tasks/{task_id}/cancel"))
        listed = await client.get("/tasks")  # the store alone answers this
        assert listed.status_code == 200

        await proxy.restore()
        again = await client.post("/tasks", json=PIPELINE)
        assert again.status_code == 202, again.text
        assert (await client.get(f"/tasks/{task_id}")).status_code == 200
