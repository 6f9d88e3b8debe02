"""Shared start rates and debounce on real servers: two API processes (docs/rate-limits.md).

Every rule here refills slowly (per minute: one start every 20-30 s), so what the
tests see is the burst and the refusal after it, never a race with the refill.
"""

from __future__ import annotations

import asyncio
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
from tests.sse import collect_events, payload

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

RUN = uuid.uuid4().hex[:8]  # fresh buckets in the session's Redis for every run
STRICT, KEYED, DEFERRING = f"strict-{RUN}", f"keyed-{RUN}", f"deferring-{RUN}"
DEBOUNCING = f"debouncing-{RUN}"
KEYS = {
    tenant: f"{tenant}-key-0123456789abcdef" for tenant in (STRICT, KEYED, DEFERRING, DEBOUNCING)
}
# Long enough that creations a test sends one after another never straddle two windows.
DEBOUNCE_SECONDS = 4
RATE_LIMITS = {
    "tenants": {
        STRICT: {"tenant": {"per_minute": 3}},
        KEYED: {"key": {"per_minute": 2}},
    },
    "types": {
        # A start every 30 s; the third is deferred, the fourth (60 s out) refused: four
        # creations would have to take 20 s for the fourth to fit instead.
        "demo.fanout": {"rate": {"per_minute": 2}, "over_limit": "defer"},
        "demo.chat": {"debounce": {"key": "concurrency_key", "period_seconds": DEBOUNCE_SECONDS}},
    },
    "max_defer_seconds": 40,
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
        for base in (limited.base_url, beside.base_url):
            created = await http.post(f"{base}/tasks", json=fanout, headers=auth(DEFERRING))
            assert created.status_code == 202, created.text
            assert "taskplane-start-delay" not in created.headers
        asked = time.time()
        deferred = await http.post("/tasks", json=fanout, headers=auth(DEFERRING))
        assert deferred.status_code == 202, deferred.text
        delay = float(deferred.headers["taskplane-start-delay"])
        assert 0 < delay <= 30
        # The next start would be ~60 s out, beyond max_defer_seconds (40): refused.
        assert_refused(await http.post("/tasks", json=fanout, headers=auth(DEFERRING)), "type-m")
        task_id = deferred.json()["task_id"]

        # The deferral is an event of the task (`task.deferred.v1`): `queued` until it
        # starts, and its stream is there from the start.
        async def queued() -> bool:
            status: str = (await _task(http, task_id, DEFERRING))["status"]
            assert status in {"pending", "queued"}, status
            return status == "queued"

        await until(queued, within=30, what="the deferral recorded")
        stream = asyncio.create_task(
            collect_events(
                http, f"/tasks/{task_id}/events", headers=auth(DEFERRING), read_timeout=90
            )
        )

        async def completed() -> bool:
            status: str = (await _task(http, task_id, DEFERRING))["status"]
            return status == "completed"

        await until(completed, within=90, what="the deferred task to complete")
        history = await http.get(f"/tasks/{task_id}/history", headers=auth(DEFERRING))
        events = history.json()["events"]
        assert [e["type"] for e in events[:2]] == ["task.deferred.v1", "task.created.v1"]
        assert events[-1]["type"] == "task.completed.v1"
        noticed = events[0]["data"]
        assert noticed["reason"] == "rate_limit"
        assert noticed["rule"] == "type-m"
        assert noticed["task_type"] == "demo.fanout"
        until_at = datetime.fromisoformat(noticed["until"]).timestamp()
        assert asked + delay - 1.0 <= until_at
        created_at = datetime.fromisoformat(events[1]["time"])
        # Temporal held its first workflow task back until the booked start (less the
        # clock's second of rounding between this host's and the server's times).
        assert created_at.timestamp() >= asked + delay - 1.0
        status, frames = await stream
        assert status == 200
        streamed = [payload(frame)["type"] for frame in frames]
        assert streamed[:2] == ["task.deferred.v1", "task.created.v1"]
        assert streamed[-1] == "task.completed.v1"


def chat(prompt: str, key: str) -> dict[str, Any]:
    return {
        "type": "demo.chat",
        "input": {"prompt": prompt, "tokens": 2, "token_seconds": 0},
        "concurrency_key": key,
    }


async def _events(http: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    response = await http.get(f"/tasks/{task_id}/history", headers=auth(DEBOUNCING))
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


async def _completed(http: httpx.AsyncClient, task_id: str) -> None:
    async def done() -> bool:
        response = await http.get(f"/tasks/{task_id}", headers=auth(DEBOUNCING))
        return response.status_code == 200 and response.json()["status"] == "completed"

    await until(done, within=90, what=f"debounced task {task_id} to complete")


async def test_debounce_collapses_creations_into_one_task_with_the_latest_input(
    limited: ProcessStack, beside: ProcessStack
) -> None:
    key = f"doc-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(base_url=limited.base_url, timeout=30) as http:
        answers = []
        for index, base in enumerate([limited.base_url, beside.base_url] * 3):
            created = await http.post(
                f"{base}/tasks", json=chat(f"prompt {index}", key), headers=auth(DEBOUNCING)
            )
            assert created.status_code == 202, created.text
            assert created.json()["status"] == "pending"
            answers.append(created.json()["task_id"])
        assert len(set(answers)) == 1
        # Another key of the same tenant has a window of its own.
        other = await http.post("/tasks", json=chat("other", f"{key}-2"), headers=auth(DEBOUNCING))
        assert other.json()["task_id"] != answers[0]

        task_id = answers[0]
        await _completed(http, task_id)
        created_event = (await _events(http, task_id))[0]
        assert created_event["type"] == "task.created.v1"
        assert created_event["data"]["input"]["prompt"] == "prompt 5"
        debounced = created_event["data"]["debounced"]
        assert debounced["collapsed"] == 6
        assert len(debounced["creations"]) == 6
        assert debounced["period_seconds"] == DEBOUNCE_SECONDS

        # The window closed when the task started: the next creation opens another.
        later = await http.post("/tasks", json=chat("later", key), headers=auth(DEBOUNCING))
        assert later.status_code == 202, later.text
        assert later.json()["task_id"] != task_id


async def test_debounce_keeps_idempotency_keys(limited: ProcessStack) -> None:
    key = f"idem-{uuid.uuid4().hex[:6]}"
    first_body, second_body = chat("first", key), chat("second", key)
    first_key = {**auth(DEBOUNCING), "Idempotency-Key": f"{key}-1"}
    second_key = {**auth(DEBOUNCING), "Idempotency-Key": f"{key}-2"}
    async with httpx.AsyncClient(base_url=limited.base_url, timeout=30) as http:
        first = await http.post("/tasks", json=first_body, headers=first_key)
        assert first.status_code == 202, first.text
        task_id = first.json()["task_id"]
        second = await http.post("/tasks", json=second_body, headers=second_key)
        assert second.status_code == 202, second.text
        assert second.json()["task_id"] == task_id
        # A repeat gets its task (200); the key with another body is refused.
        repeat = await http.post("/tasks", json=first_body, headers=first_key)
        assert repeat.status_code == 200, repeat.text
        assert repeat.json()["task_id"] == task_id
        misuse = await http.post("/tasks", json=second_body, headers=first_key)
        assert misuse.status_code == 422, misuse.text
        await _completed(http, task_id)
        created_event = (await _events(http, task_id))[0]
        # The repeat was answered, not collapsed: two creations, the second's input.
        assert created_event["data"]["debounced"]["collapsed"] == 2
        assert created_event["data"]["input"]["prompt"] == "second"
        # After the start too, the repeat is answered with the task.
        again = await http.post("/tasks", json=first_body, headers=first_key)
        assert again.status_code == 200, again.text
        assert again.json()["task_id"] == task_id
        assert again.json()["status"] == "completed"
