"""CORS on the real app (`TASKPLANE_CORS_ORIGINS`), Postgres, Redis and Temporal.

A page on another origin must be able to preflight without a key, read the API's
refusals (problem+json with CORS headers), create and control tasks with its key and
follow a stream with a token; other origins get nothing, and credentials never.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from api.app import create_app
from settings import ConfigurationError, Settings
from tests.integration.live_api import LiveApi, live_api

KEY = "key-of-the-page-0123456789"
PAGE = "http://app.example.test:5173"
OTHER = "http://evil.example.test"


@pytest.fixture
async def api(database_url: str, redis_url: str, temporal_address: str) -> AsyncIterator[LiveApi]:
    async with live_api(
        database_url=database_url,
        redis_url=redis_url,
        temporal_address=temporal_address,
        # No worker polls this queue: tasks stay pending (enough for headers).
        task_queue=f"cors-{uuid.uuid4().hex[:8]}",
        api_keys=SecretStr(f"page:{KEY}"),
        cors_origins=f"https://other.example.test, {PAGE}",
    ) as running:
        yield running


def preflight(origin: str, method: str, headers: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


async def test_preflight_needs_no_key_and_allows_what_the_clients_send(api: LiveApi) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        sent = "authorization, content-type, idempotency-key, last-event-id"
        response = await http.options("/tasks", headers=preflight(PAGE, "POST", sent))
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == PAGE
        allowed = response.headers["access-control-allow-headers"].lower()
        for header in ("authorization", "content-type", "idempotency-key", "last-event-id"):
            assert header in allowed
        assert "POST" in response.headers["access-control-allow-methods"]
        assert "access-control-allow-credentials" not in response.headers
        refused = await http.options("/tasks", headers=preflight(OTHER, "POST", "authorization"))
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers


async def test_refusals_and_answers_carry_cors_headers_for_allowed_origins_only(
    api: LiveApi,
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        refused = await http.get("/tasks", headers={"Origin": PAGE})
        assert refused.status_code == 401
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.headers["access-control-allow-origin"] == PAGE
        exposed = refused.headers["access-control-expose-headers"].lower()
        for header in ("retry-after", "x-request-id", "location", "ratelimit"):
            assert header in exposed
        assert "access-control-allow-credentials" not in refused.headers

        key = {"Authorization": f"Bearer {KEY}"}
        created = await http.post(
            "/tasks",
            json={"type": "demo.pipeline", "input": {}},
            headers={"Origin": PAGE, "Idempotency-Key": uuid.uuid4().hex, **key},
        )
        assert created.status_code == 202, created.text
        assert created.headers["access-control-allow-origin"] == PAGE
        task_id = created.json()["task_id"]

        other = await http.get(f"/tasks/{task_id}", headers={"Origin": OTHER, **key})
        assert other.status_code == 200  # CORS is the browser's check: the server answers,
        assert "access-control-allow-origin" not in other.headers  # but lets no page read it

        minted = await http.post(f"/tasks/{task_id}/stream-token", headers={"Origin": PAGE, **key})
        assert minted.status_code == 201
        token = minted.json()["token"]
        # With `?token=` the stream is a simple request (no preflight); it answers with CORS.
        async with http.stream(
            "GET", f"/tasks/{task_id}/events", params={"token": token}, headers={"Origin": PAGE}
        ) as stream:
            assert stream.status_code == 200
            assert stream.headers["access-control-allow-origin"] == PAGE


async def test_without_the_setting_no_origin_is_allowed(
    database_url: str, redis_url: str, temporal_address: str
) -> None:
    async with (
        live_api(
            database_url=database_url, redis_url=redis_url, temporal_address=temporal_address
        ) as api,
        httpx.AsyncClient(base_url=api.url) as http,
    ):
        response = await http.get("/healthz", headers={"Origin": PAGE})
        assert "access-control-allow-origin" not in response.headers
        blocked = await http.options("/tasks", headers=preflight(PAGE, "POST", "content-type"))
        assert "access-control-allow-origin" not in blocked.headers


@pytest.mark.parametrize(
    "value", ["https://a.example/", "a.example", "ftp://a.example", "https://a:70000", "*,http://b"]
)
def test_a_malformed_origin_stops_the_api_at_start(value: str) -> None:
    with pytest.raises(ConfigurationError, match="TASKPLANE_CORS_ORIGINS"):
        create_app(Settings(cors_origins=value))
