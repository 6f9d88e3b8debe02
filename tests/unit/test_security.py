"""API keys, stream tokens, limits and the OpenAPI document, without servers.

The middlewares run on a tiny Starlette app that echoes what it was given, so
what they let through (and with which tenant) is visible; the end-to-end
behaviour on the real app is in tests/integration/test_tenancy.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api.api_keys import ApiKeys
from api.auth import TENANT_SCOPE_KEY, AuthMiddleware
from api.limits import (
    MAX_SEQUENCE,
    BodyLimitMiddleware,
    RateLimiter,
    TenantStreamGate,
    parse_sequence,
)
from api.problems import ProblemError, install_problem_handlers
from api.stream_tokens import InvalidStreamTokenError, StreamTokens
from settings import ConfigurationError, Settings
from store.tasks import InvalidCursorError, decode_cursor, encode_cursor
from telemetry.metrics import ignore_error

TASK = "2b7f0c2e-8d3a-4c1e-9f6b-0a1b2c3d4e5f"
OTHER_TASK = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
SECRET = b"0123456789abcdef0123456789abcdef"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- keys ------------------------------------------------------------------------------


def test_keys_plain_and_hashed() -> None:
    hashed = hashlib.sha256(b"key-of-tenant-b-123").hexdigest()
    keys = ApiKeys.parse(f" tenant_a:key-of-tenant-a-123 , tenant_b:sha256:{hashed},")
    assert not keys.open
    assert keys.tenants == {"tenant_a", "tenant_b"}
    assert keys.tenant_for("key-of-tenant-a-123") == "tenant_a"
    assert keys.tenant_for("key-of-tenant-b-123") == "tenant_b"
    assert keys.tenant_for(f"sha256:{hashed}") is None  # the hash itself is no key
    assert keys.tenant_for("key-of-tenant-a-12") is None
    assert keys.tenant_for("") is None


def test_a_tenant_may_have_several_keys() -> None:
    keys = ApiKeys.parse("a:old-key-0000000000,a:new-key-0000000000")
    assert keys.tenant_for("old-key-0000000000") == keys.tenant_for("new-key-0000000000") == "a"


def test_no_keys_is_open() -> None:
    assert ApiKeys.parse("").open
    assert ApiKeys.parse(" , ").open


@pytest.mark.parametrize(
    "spec",
    [
        "just-a-key",  # no tenant
        "tenant:",  # no key
        "bad tenant:key-0000000000000",  # space in the name
        "a:sha256:abc",  # not 64 hex digits
        "a:same-key-00000000000,b:same-key-00000000000",  # one key, two tenants
    ],
)
def test_bad_key_configuration_refused_at_start(spec: str) -> None:
    with pytest.raises(ConfigurationError):
        ApiKeys.parse(spec)


# --- stream tokens ---------------------------------------------------------------------


def test_token_valid_for_its_task_until_it_expires() -> None:
    clock = Clock()
    tokens = StreamTokens(SECRET, ttl_seconds=60, clock=clock)
    token, expires_at = tokens.mint(TASK, "tenant_a")
    assert expires_at.timestamp() == clock.now + 60
    grant = tokens.verify(token, TASK)
    assert (grant.task_id, grant.tenant) == (TASK, "tenant_a")
    with pytest.raises(InvalidStreamTokenError, match="another task"):
        tokens.verify(token, OTHER_TASK)
    clock.now += 59.5
    tokens.verify(token, TASK)
    clock.now += 0.5
    with pytest.raises(InvalidStreamTokenError, match="expired"):
        tokens.verify(token, TASK)


def test_tampered_or_foreign_tokens_refused() -> None:
    tokens = StreamTokens(SECRET, ttl_seconds=60)
    token, _ = tokens.mint(TASK, "tenant_a")
    body, _, signature = token.partition(".")
    forged_body = StreamTokens(b"another-secret-of-32-bytes-long!", ttl_seconds=60).mint(
        TASK, "tenant_b"
    )[0]
    for bad in (
        forged_body,  # signed with another secret
        f"{forged_body.partition('.')[0]}.{signature}",  # another payload, our signature
        f"{body}.{signature[:-2]}",
        token + "x",
        "",
        ".",
        "no-dot",
        "é.ü",  # non-ASCII must be refused, not crash the comparison
        "x" * 5000,
    ):
        with pytest.raises(InvalidStreamTokenError):
            tokens.verify(bad, TASK)


def test_token_secret_from_settings_is_shared_between_processes() -> None:
    settings = Settings(stream_token_secret=SecretStr("s" * 32))
    token, _ = StreamTokens.from_settings(settings).mint(TASK, "a")
    assert StreamTokens.from_settings(settings).verify(token, TASK).tenant == "a"
    unset = Settings(stream_token_secret=None)
    token, _ = StreamTokens.from_settings(unset).mint(TASK, "a")
    with pytest.raises(InvalidStreamTokenError):  # each process draws its own secret
        StreamTokens.from_settings(unset).verify(token, TASK)


# --- limits ----------------------------------------------------------------------------


def test_rate_limiter_bucket() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, 3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") == 0.0  # per tenant
    clock.now += 0.5
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0
    clock.now += 100  # saved up, but never more than the burst
    assert [limiter.take("a") == 0.0 for _ in range(4)] == [True, True, True, False]


def test_tenant_stream_gate() -> None:
    gate = TenantStreamGate(2)
    assert gate.try_acquire("a")
    assert gate.try_acquire("a")
    assert not gate.try_acquire("a")
    assert gate.try_acquire("b")
    gate.release("a")
    assert gate.try_acquire("a")
    refusal = gate.refusal("a")
    assert refusal.status == 429
    assert refusal.headers == {"Retry-After": "5"}
    off = TenantStreamGate(1, enabled=False)
    assert off.try_acquire("a")
    assert off.try_acquire("a")


@pytest.mark.parametrize(
    "raw",
    [
        "-1",
        "abc",
        "1.5",
        "1e3",
        "",
        " ",
        "0x10",
        "\uff11",
        "1_000",
        str(MAX_SEQUENCE + 1),
        "9" * 5000,
    ],
)
def test_sequence_garbage_is_400(raw: str) -> None:
    with pytest.raises(ProblemError) as caught:
        parse_sequence(raw, "Last-Event-ID")
    assert caught.value.status == 400


def test_sequence_bounds() -> None:
    assert parse_sequence(" 0 ", "after") == 0
    assert parse_sequence(str(MAX_SEQUENCE), "after") == MAX_SEQUENCE


def test_cursor_round_trip_and_garbage() -> None:
    from datetime import UTC, datetime

    when = datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=UTC)
    assert decode_cursor(encode_cursor(when, TASK)) == (when, TASK)
    for bad in (
        "!!!",
        "x" * 201,
        encode_cursor(when, "not-a-uuid"),
        encode_cursor(when, "\x00"),
        encode_cursor(datetime(2026, 1, 1), TASK),  # naive
        "MjAyNnwx",  # "2026|1"
    ):
        with pytest.raises(InvalidCursorError):
            decode_cursor(bad)


# --- middlewares -----------------------------------------------------------------------


async def _echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"tenant": request.scope.get(TENANT_SCOPE_KEY), "size": len(body)})


def _app(**middleware: Any) -> FastAPI:
    app = FastAPI(
        routes=[
            Route("/healthz", _echo),
            Route("/tasks", _echo, methods=["GET", "POST"]),
            Route("/tasks/{task_id}/events", _echo),
            Route("/tasks/{task_id}/history", _echo),
        ]
    )
    install_problem_handlers(app, ignore_error)
    if "keys" in middleware:
        app.add_middleware(AuthMiddleware, **middleware)
    else:
        app.add_middleware(BodyLimitMiddleware, **middleware)
    return app


@pytest.fixture
async def keyed() -> AsyncIterator[tuple[httpx.AsyncClient, StreamTokens]]:
    tokens = StreamTokens(SECRET, ttl_seconds=60)
    app = _app(keys=ApiKeys.parse("a:key-a-0000000000000,b:key-b-0000000000000"), tokens=tokens)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client, tokens


async def test_auth_names_the_tenant_or_401s(
    keyed: tuple[httpx.AsyncClient, StreamTokens],
) -> None:
    client, _ = keyed
    ok = await client.get("/tasks", headers={"Authorization": "Bearer key-b-0000000000000"})
    assert ok.json()["tenant"] == "b"
    lower = await client.get("/tasks", headers={"Authorization": "bearer key-a-0000000000000"})
    assert lower.json()["tenant"] == "a"
    for headers, error in (
        ({}, None),
        ({"Authorization": "Bearer wrong"}, "invalid_token"),
        ({"Authorization": "Basic a2V5LWEtMDAwMDAwMDAwMDAwMA=="}, "invalid_request"),
        ({"Authorization": "Bearer"}, "invalid_request"),
    ):
        refused = await client.post("/tasks", headers=headers, content=b"{}")
        assert refused.status_code == 401, headers
        assert refused.headers["content-type"] == "application/problem+json"
        challenge = refused.headers["www-authenticate"]
        assert challenge.startswith("Bearer realm=")
        assert (f'error="{error}"' in challenge) if error else ("error" not in challenge)
        assert refused.json()["status"] == 401
    public = await client.get("/healthz")
    assert public.status_code == 200
    assert public.json()["tenant"] is None


async def test_stream_token_only_on_the_events_endpoint(
    keyed: tuple[httpx.AsyncClient, StreamTokens],
) -> None:
    client, tokens = keyed
    token, _ = tokens.mint(TASK, "b")
    ok = await client.get(f"/tasks/{TASK}/events", params={"token": token})
    assert ok.json()["tenant"] == "b"
    assert (
        await client.get(f"/tasks/{OTHER_TASK}/events", params={"token": token})
    ).status_code == 401
    assert (await client.get(f"/tasks/{TASK}/history", params={"token": token})).status_code == 401
    assert (await client.get("/tasks", params={"token": token})).status_code == 401
    assert (await client.post(f"/tasks/{TASK}/events", params={"token": token})).status_code == 401
    gone, _ = tokens.mint(TASK, "c")  # a tenant whose keys were removed
    assert (await client.get(f"/tasks/{TASK}/events", params={"token": gone})).status_code == 401


async def test_open_mode_acts_for_default() -> None:
    app = _app(keys=ApiKeys(), tokens=StreamTokens(SECRET, ttl_seconds=60))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        assert (await client.get("/tasks")).json()["tenant"] == "default"
        sent_key = await client.get("/tasks", headers={"Authorization": "Bearer anything"})
        assert sent_key.json()["tenant"] == "default"
        # A token is still checked where it is given.
        bad = await client.get(f"/tasks/{TASK}/events", params={"token": "forged.token"})
        assert bad.status_code == 401


async def _chunks(size: int, chunk: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, size, chunk):
        yield b"x" * min(chunk, size - start)


async def test_body_limit_on_declared_and_streamed_bodies() -> None:
    transport = httpx.ASGITransport(app=_app(max_bytes=5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        fits = await client.post("/tasks", content=b"x" * 5000)
        assert fits.json()["size"] == 5000
        declared = await client.post("/tasks", content=b"x" * 5001)
        assert declared.status_code == 413
        assert declared.headers["content-type"] == "application/problem+json"
        # Chunked: no Content-Length, so only counting the body as it arrives can catch it.
        streamed = await client.post("/tasks", content=_chunks(20_000))
        assert "content-length" not in streamed.request.headers
        assert streamed.status_code == 413
        assert streamed.json()["status"] == 413
        small_stream = await client.post("/tasks", content=_chunks(4000))
        assert small_stream.json()["size"] == 4000


# --- the OpenAPI document --------------------------------------------------------------


def test_openapi_documents_problems_and_auth() -> None:
    from api.app import create_app

    doc = create_app(Settings(api_keys=SecretStr("a:key-a-0000000000000"))).openapi()
    assert "Problem" in doc["components"]["schemas"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    create = doc["paths"]["/tasks"]["post"]
    for code in ("401", "413", "422", "429"):
        assert create["responses"][code]["content"] == {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        }, code
    assert create["security"] == [{"apiKey": []}]
    events = doc["paths"]["/tasks/{task_id}/events"]["get"]
    assert {"streamToken": []} in events["security"]
    assert {"400", "401", "404", "429", "503"} <= set(events["responses"])
    assert "201" in doc["paths"]["/tasks/{task_id}/stream-token"]["post"]["responses"]
    assert "401" not in doc["paths"]["/healthz"]["get"]["responses"]
    assert "security" not in doc["paths"]["/healthz"]["get"]
