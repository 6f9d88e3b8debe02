"""Shared start rates on real servers: two API processes, one limit (docs/rate-limits.md).

Every rule here refills slowly (per minute: one start every 20-30 s), so what the
tests see is the burst and the refusal after it, never a race with the refill.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ProcessStack, api_beside, running_stack
from tests.polling import until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

RUN = uuid.uuid4().hex[:8]  # fresh buckets in the session's Redis for every run
STRICT, KEYED, DEFERRING = f"strict-{RUN}", f"keyed-{RUN}", f"deferring-{RUN}"
KEYS = {tenant: f"{tenant}-key-0123456789abcdef" for tenant in (STRICT, KEYED, DEFERRING)}
RATE_LIMITS = {
    "tenants": {
        STRICT: {"tenant": {"per_minute": 3}},
        KEYED: {"key": {"per_minute": 2}},
    },
    "types": {"demo.fanout": {"rate": {"per_minute": 3}, "over_limit": "defer"}},
    "max_defer_seconds": 30,
}
QUICK = {"type": "demo.pipeline", "input": {"steps": 1, "step_seconds": 0}}


def auth(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[tenant]}"}


@pytest.fixture(scope="module")
def limited(services: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessStack]:
    settings = {
        "api_keys": ",".join(f"{tenant}:{key}" for tenant, key in KEYS.items()),
        "rate_limits": json.dumps(RATE_LIMITS),
    }
    log_dir = tmp_path_factory.mktemp("e2e-rate-limits")
    with running_stack(services, log_dir, **settings) as stack:
        yield stack


@pytest.fixture(scope="module")
def beside(
    limited: ProcessStack, services: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProcessStack]:
    log_dir: Path = tmp_path_factory.mktemp("e2e-rate-limits-beside")
    with api_beside(
        limited,
        services,
        log_dir,
        **{
            "api_keys": limited.env["TASKPLANE_API_KEYS"],
            "rate_limits": limited.env["TASKPLANE_RATE_LIMITS"],
        },
    ) as api:
        yield api


def assert_refused(response: httpx.Response, policy: str) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["rate_limit"] == policy
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["ratelimit"].startswith(f'"{policy}";r=0;t=')
    assert f'"{policy}";q=' in response.headers["ratelimit-policy"]


async def test_two_api_processes_share_one_tenant_limit(
    limited: ProcessStack, beside: ProcessStack
) -> None:
    async with (
        httpx.AsyncClient(base_url=limited.base_url, timeout=30) as one,
        httpx.AsyncClient(base_url=beside.base_url, timeout=30) as two,
    ):
        idempotent = {**auth(STRICT), "Idempotency-Key": f"once-{RUN}"}
        first = await one.post("/tasks", json=QUICK, headers=idempotent)
        assert first.status_code == 202, first.text
        assert first.headers["ratelimit-policy"] == '"tenant-m";q=3;w=60'
        assert first.headers["ratelimit"].startswith('"tenant-m";r=2;')
        remaining = []
        for http in (two, one):
            created = await http.post("/tasks", json=QUICK, headers=auth(STRICT))
            assert created.status_code == 202, created.text
            remaining.append(created.headers["ratelimit"].split(";")[1])
        assert remaining == ["r=1", "r=0"]
        # The bucket is empty for both processes: the quota of 3 was taken on both.
        assert_refused(await one.post("/tasks", json=QUICK, headers=auth(STRICT)), "tenant-m")
        assert_refused(await two.post("/tasks", json=QUICK, headers=auth(STRICT)), "tenant-m")
        # A repeat of an Idempotency-Key is answered with its task, never refused.
        again = await two.post("/tasks", json=QUICK, headers=idempotent)
        assert again.status_code == 200, again.text
        assert again.json()["task_id"] == first.json()["task_id"]
        # Other tenants have buckets of their own.
        other = await two.post("/tasks", json=QUICK, headers=auth(KEYED))
        assert other.status_code == 202, other.text


async def test_each_concurrency_key_has_its_own_rate(
    limited: ProcessStack, beside: ProcessStack
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        for key in ("customer-a", "customer-b"):
            for base in (limited.base_url, beside.base_url):
                body = {**QUICK, "concurrency_key": key}
                created = await http.post(f"{base}/tasks", json=body, headers=auth(KEYED))
                assert created.status_code == 202, created.text
                assert created.headers["ratelimit-policy"] == '"key-m";q=2;w=60'
            refused = await http.post(
                f"{limited.base_url}/tasks",
                json={**QUICK, "concurrency_key": key},
                headers=auth(KEYED),
            )
            assert_refused(refused, "key-m")
            assert key in refused.json()["detail"]


async def _task(http: httpx.AsyncClient, task_id: str, tenant: str) -> dict[str, Any]:
    response = await http.get(f"/tasks/{task_id}", headers=auth(tenant))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_deferring_type_accepts_and_starts_later(
    limited: ProcessStack, beside: ProcessStack
) -> None:
    fanout = {"type": "demo.fanout", "input": {"branches": 1, "step_seconds": 0}}
    async with httpx.AsyncClient(base_url=limited.base_url, timeout=30) as http:
        for base in (limited.base_url, beside.base_url, limited.base_url):
            created = await http.post(f"{base}/tasks", json=fanout, headers=auth(DEFERRING))
            assert created.status_code == 202, created.text
            assert "taskplane-start-delay" not in created.headers
        asked = time.time()
        deferred = await http.post("/tasks", json=fanout, headers=auth(DEFERRING))
        assert deferred.status_code == 202, deferred.text
        delay = float(deferred.headers["taskplane-start-delay"])
        assert 0 < delay <= 20
        # The next start would be ~40 s out, beyond max_defer_seconds (30): refused.
        assert_refused(await http.post("/tasks", json=fanout, headers=auth(DEFERRING)), "type-m")
        task_id = deferred.json()["task_id"]
        assert (await _task(http, task_id, DEFERRING))["status"] == "pending"

        async def completed() -> bool:
            status: str = (await _task(http, task_id, DEFERRING))["status"]
            return status == "completed"

        await until(completed, within=90, what="the deferred task to complete")
        history = await http.get(f"/tasks/{task_id}/history", headers=auth(DEFERRING))
        created_at = datetime.fromisoformat(history.json()["events"][0]["time"])
        # Temporal held its first workflow task back until the booked start (less the
        # clock's second of rounding between this host's and the server's times).
        assert created_at.timestamp() >= asked + delay - 1.0
