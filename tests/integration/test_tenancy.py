"""Tenants, API keys, stream tokens and limits on the real app, Postgres, Redis and Temporal.

The API runs in-process (`live_api`) with the settings each test needs. No
worker polls its task queue, so a task made with `POST /tasks` stays `pending`
in Temporal (ownership is checked before the store knows it); where a test
needs stored events it records them itself through the production recorder.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from activities.recorder import EventRecorder
from api.auth import is_public
from store.tasks import encode_cursor
from tests.integration.live_api import LiveApi, live_api
from tests.polling import until
from tests.sse import Frame, payload, read_frames

KEY_A = "key-of-tenant-a-0123456789"
KEY_B = "key-of-tenant-b-0123456789"
A = {"Authorization": f"Bearer {KEY_A}"}
B = {"Authorization": f"Bearer {KEY_B}"}
PROBLEM = "application/problem+json"


@pytest.fixture
def servers(database_url: str, redis_url: str, temporal_address: str) -> dict[str, Any]:
    return {
        "database_url": database_url,
        "redis_url": redis_url,
        # No worker polls this queue: tasks stay pending unless a test records events.
        "temporal_address": temporal_address,
        "task_queue": f"tenancy-{uuid.uuid4().hex[:8]}",
    }


def keyed(**settings: Any) -> dict[str, Any]:
    return {"api_keys": SecretStr(f"tenant_a:{KEY_A},tenant_b:{KEY_B}"), **settings}


@pytest.fixture
async def api(servers: dict[str, Any]) -> AsyncIterator[LiveApi]:
    async with live_api(
        **servers, **keyed(webhook_allow_private_networks=True, stream_token_ttl_seconds=1.0)
    ) as running:
        yield running


@pytest.fixture
async def http(api: LiveApi) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.url, timeout=20) as client:
        yield client


async def create(http: httpx.AsyncClient, headers: dict[str, str], **extra: Any) -> dict[str, Any]:
    body = {"type": "demo.pipeline", "input": {"steps": 1}, **extra.pop("body", {})}
    response = await http.post("/tasks", json=body, headers={**headers, **extra})
    assert response.status_code in (200, 202), response.text
    created: dict[str, Any] = response.json()
    return created


async def record_created(recorder: EventRecorder, task_id: str) -> None:
    await recorder.record(
        event_id=str(uuid.uuid4()),
        task_id=task_id,
        event_type="task.created.v1",
        data={"task_type": "demo.pipeline", "input": {"steps": 1}},
    )


async def stream_status_and_bytes(
    http: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None
) -> tuple[int, str, bytes]:
    """Status, content type and every byte of the body of a refused stream."""
    async with http.stream("GET", path, headers=headers) as response:
        body = await response.aread() if response.status_code != 200 else b""
        return response.status_code, response.headers.get("content-type", ""), body


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


# --- tenants ---------------------------------------------------------------------------


async def test_another_tenants_task_does_not_exist(
    http: httpx.AsyncClient, recorder: EventRecorder
) -> None:
    webhook = {"url": "http://127.0.0.1:9/hook"}
    mine = await create(http, A, body={"webhook": webhook})
    pending = await create(http, A)  # never recorded: Temporal knows it, the store does not
    theirs = await create(http, B)
    await record_created(recorder, mine["task_id"])
    own = await http.get(f"/tasks/{mine['task_id']}", headers=A)
    assert own.json()["status"] == "running"
    assert (await http.get(f"/tasks/{pending['task_id']}", headers=A)).json()["status"] == "pending"
    assert (await http.get(f"/tasks/{mine['task_id']}/webhook", headers=A)).status_code == 200
    assert (await http.get(f"/tasks/{mine['task_id']}/history", headers=A)).json()["events"]

    for task in (mine, pending):
        base = f"/tasks/{task['task_id']}"
        for method, path in (
            ("GET", base),
            ("GET", f"{base}/history"),
            ("GET", f"{base}/webhook"),
            ("POST", f"{base}/pause"),
            ("POST", f"{base}/resume"),
            ("POST", f"{base}/cancel"),
            ("POST", f"{base}/stream-token"),
        ):
            refused = await http.request(method, path, headers=B)
            body = assert_problem(refused, 404)
            assert "tenant_a" not in refused.text, path
            assert "webhook" not in body["detail"], path  # nothing about the task leaks
        status, content_type, raw = await stream_status_and_bytes(http, f"{base}/events", B)
        assert (status, content_type) == (404, PROBLEM)
        assert b"data:" not in raw
        assert b"id:" not in raw
    # …and the same for A looking at B's.
    assert_problem(await http.get(f"/tasks/{theirs['task_id']}", headers=A), 404)

    listed_a = {t["task_id"] for t in (await http.get("/tasks", headers=A)).json()["tasks"]}
    listed_b = {t["task_id"] for t in (await http.get("/tasks", headers=B)).json()["tasks"]}
    assert mine["task_id"] in listed_a
    assert theirs["task_id"] not in listed_a
    assert not listed_a & listed_b


async def test_idempotency_keys_are_per_tenant(http: httpx.AsyncClient) -> None:
    key = {"Idempotency-Key": f'"{uuid.uuid4()}"'}
    first_a = await http.post("/tasks", json={"type": "demo.pipeline"}, headers={**A, **key})
    first_b = await http.post("/tasks", json={"type": "demo.pipeline"}, headers={**B, **key})
    again_a = await http.post("/tasks", json={"type": "demo.pipeline"}, headers={**A, **key})
    assert (first_a.status_code, first_b.status_code, again_a.status_code) == (202, 202, 200)
    assert first_a.json()["task_id"] != first_b.json()["task_id"]
    assert again_a.json()["task_id"] == first_a.json()["task_id"]
    assert (await http.get(f"/tasks/{first_b.json()['task_id']}", headers=B)).status_code == 200
    assert_problem(await http.get(f"/tasks/{first_b.json()['task_id']}", headers=A), 404)


async def test_every_non_public_endpoint_needs_a_key(api: LiveApi, http: httpx.AsyncClient) -> None:
    task_id = str(uuid.uuid4())
    checked = []
    for path, item in api.app.openapi()["paths"].items():
        for method in item:
            url = path.replace("{task_id}", task_id).replace("{event_type}", "task.created.v1")
            for headers in ({}, {"Authorization": "Bearer not-a-key"}):
                response = await http.request(method.upper(), url, headers=headers)
                if is_public(path):
                    assert response.status_code != 401, url
                    continue
                assert_problem(response, 401)
                assert response.headers["www-authenticate"].startswith("Bearer")
                checked.append(f"{method} {path}")
    assert {"get /tasks", "post /tasks", "get /tasks/{task_id}/events"} <= set(checked)
    assert (await http.get("/healthz")).status_code == 200
    assert (await http.get("/metrics")).status_code == 200
    assert (await http.get("/openapi.json")).status_code == 200
    assert (await http.get("/")).status_code == 200


async def test_open_mode_is_tenant_default_and_says_so(
    servers: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="api.auth"):
        async with live_api(**servers) as api, httpx.AsyncClient(base_url=api.url) as http:
            task = await create(http, {})
            assert (await http.get(f"/tasks/{task['task_id']}")).status_code == 200
            # A client that always sends its key works against an open API too.
            sent_key = await http.get(f"/tasks/{task['task_id']}", headers=A)
            assert sent_key.status_code == 200
    assert any("OPEN" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


# --- stream tokens ---------------------------------------------------------------------


async def event_frames(response: httpx.Response) -> AsyncIterator[Frame]:
    async for frame in read_frames(response):
        if frame.is_event:
            yield frame


async def test_stream_tokens(http: httpx.AsyncClient, recorder: EventRecorder) -> None:
    task = await create(http, A)
    other = await create(http, A)
    await record_created(recorder, task["task_id"])
    assert_problem(await http.post(f"/tasks/{task['task_id']}/stream-token"), 401)
    minted = await http.post(f"/tasks/{task['task_id']}/stream-token", headers=A)
    assert minted.status_code == 201
    grant = minted.json()
    assert set(grant) == {"token", "expires_at", "events_url"}
    assert grant["events_url"] == f"/tasks/{task['task_id']}/events?token={grant['token']}"

    async with http.stream("GET", grant["events_url"]) as response:  # no header at all
        assert response.status_code == 200
        first = await anext(aiter(event_frames(response)), None)
    assert first is not None, "the stream ended without an event"
    assert first.event == "task.created.v1"
    assert payload(first)["subject"] == task["task_id"]

    token = grant["token"]
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    for path in (
        f"/tasks/{task['task_id']}/events?token={tampered}",
        f"/tasks/{other['task_id']}/events?token={token}",  # another task, same tenant
        f"/tasks/{task['task_id']}/events?token=",
    ):
        status, content_type, raw = await stream_status_and_bytes(http, path)
        assert (status, content_type) == (401, PROBLEM), path
        assert b"data:" not in raw
    # Accepted on the events endpoint only.
    for method, path in (
        ("GET", f"/tasks/{task['task_id']}"),
        ("GET", f"/tasks/{task['task_id']}/history"),
        ("POST", f"/tasks/{task['task_id']}/stream-token"),
        ("POST", f"/tasks/{task['task_id']}/cancel"),
        ("GET", "/tasks"),
    ):
        assert_problem(await http.request(method, f"{path}?token={token}"), 401)
    # Expired (the fixture's TTL is 1 s): checked when a stream connects.
    refused: list[bytes] = []

    async def expired() -> bool:
        status, _, raw = await stream_status_and_bytes(http, grant["events_url"])
        if status == 401:
            refused.append(raw)
        return status == 401

    await until(expired, within=5, what="the stream token to expire")
    assert b"expired" in refused[-1]


# --- limits ----------------------------------------------------------------------------


async def _big_body(size: int) -> AsyncIterator[bytes]:
    yield b'{"type": "demo.pipeline", "input": {"pad": "'
    for _ in range(size // 1000):
        yield b"x" * 1000
    yield b'"}}'


async def test_limits(servers: dict[str, Any]) -> None:
    settings = keyed(
        limit_body_bytes=2000,
        limit_tasks_page_size=5,
        limit_history_page_size=3,
        limit_streams_per_tenant=2,
        limit_task_create_per_second=0.2,
        limit_task_create_burst=2,
    )
    async with live_api(**servers, **settings) as api, AsyncExitStack() as streams:
        http = await streams.enter_async_context(httpx.AsyncClient(base_url=api.url, timeout=20))
        # Body size: by Content-Length, and by counting a chunked body as it arrives.
        padded = {"type": "demo.pipeline", "input": {"pad": "x" * 3000}}
        assert_problem(await http.post("/tasks", json=padded, headers=A), 413)
        chunked = await http.post("/tasks", content=_big_body(5000), headers=A)
        assert "content-length" not in chunked.request.headers
        assert_problem(chunked, 413)

        # Creation rate: a burst of 2, then 429 with Retry-After; other tenants unaffected.
        task = await create(http, A)
        await create(http, A)
        throttled = await http.post("/tasks", json={"type": "demo.pipeline"}, headers=A)
        assert_problem(throttled, 429)
        assert int(throttled.headers["retry-after"]) >= 1
        await create(http, B)

        # Page sizes: the setting, and the absolute bound of the OpenAPI document.
        assert (await http.get("/tasks?limit=5", headers=A)).status_code == 200
        assert_problem(await http.get("/tasks?limit=6", headers=A), 422)
        assert_problem(await http.get("/tasks?limit=1001", headers=A), 422)
        history = f"/tasks/{task['task_id']}/history"
        assert (await http.get(f"{history}?limit=3", headers=A)).status_code == 200
        assert_problem(await http.get(f"{history}?limit=4", headers=A), 422)

        # Resume points that are garbage or huge: 400, never 5xx.
        events = f"/tasks/{task['task_id']}/events"
        for path, headers in (
            (f"{history}?after=-1", A),
            (f"{history}?after=abc", A),
            (f"{history}?after=2147483648", A),
            (f"{history}?after=99999999999999999999999", A),
            (f"{events}?after=-1", A),
            (f"{events}?after=2147483648", A),
            (events, {**A, "Last-Event-ID": "abc"}),
            (events, {**A, "Last-Event-ID": "-5"}),
            (events, {**A, "Last-Event-ID": "2147483648"}),
            (events, {**A, "Last-Event-ID": "9" * 5000}),
            ("/tasks?cursor=!!!", A),
            ("/tasks?cursor=" + "A" * 500, A),
            ("/tasks?cursor=" + encode_cursor(datetime.now(UTC), "\x00"), A),  # NUL in the id
        ):
            status, content_type, _ = await stream_status_and_bytes(http, path, headers)
            assert (status, content_type) == (400, PROBLEM), path

        # Concurrent streams per tenant: 2, then 429; released when a stream ends.
        async def open_stream(headers: dict[str, str]) -> httpx.Response:
            return await streams.enter_async_context(http.stream("GET", events, headers=headers))

        first = await open_stream(A)
        second = await open_stream(A)
        assert (first.status_code, second.status_code) == (200, 200)
        status, content_type, raw = await stream_status_and_bytes(http, events, A)
        assert (status, content_type) == (429, PROBLEM)
        assert b"LIMIT_STREAMS_PER_TENANT" in raw
        await first.aclose()

        async def slot_free() -> bool:
            open_streams: int = api.app.state.tenant_streams.open("tenant_a")
            return open_streams < 2

        await until(slot_free)
        async with http.stream("GET", events, headers=A) as third:
            assert third.status_code == 200
