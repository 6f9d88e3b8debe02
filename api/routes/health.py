"""Liveness, readiness of every dependency, and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from api.deps import ServicesDep
from api.services import Services
from api.state import ApiState
from telemetry.metrics import METRICS_CONTENT_TYPE

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_SECONDS = 2.0
REDIS_DOWN_IMPAIRS = [
    "live SSE delivery: streams read the store every TASKPLANE_SSE_STORE_POLL_SECONDS instead",
    "durable handlers wait until Redis is back (nothing is lost); webhooks do not need Redis",
    "events recorded meanwhile reach Redis through the worker's outbox relay, late",
]


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _check_postgres(services: Services) -> None:
    async with services.pool.connection() as conn:
        await conn.execute("SELECT 1")


async def _check_redis(services: Services) -> None:
    if not await services.broker.ping():
        raise ConnectionError("broker did not answer")


async def _check_temporal(services: Services) -> None:
    if not await services.temporal.serving():
        raise ConnectionError("temporal is not serving")


async def _run(check: Any, services: Services) -> dict[str, str]:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await check(services)
    except Exception as exc:  # noqa: BLE001 - any failure means "down"; readiness reports it
        return {"status": "down", "error": str(exc) or type(exc).__name__}
    return {"status": "up"}


@router.get("/readyz")
async def readyz(services: ServicesDep) -> JSONResponse:
    names = ("postgres", "redis", "temporal")
    results = await asyncio.gather(
        *(_run(check, services) for check in (_check_postgres, _check_redis, _check_temporal))
    )
    checks = dict(zip(names, results, strict=True))
    down = {name for name, result in checks.items() if result["status"] != "up"}
    if down - {"redis"}:
        # Without Postgres or Temporal this process cannot create, control or read tasks.
        return JSONResponse({"status": "unavailable", "checks": checks}, status_code=503)
    body: dict[str, Any] = {"status": "ready", "checks": checks}
    if down:
        # Redis is only the doorbell: everything still works, some of it slower.
        body["status"] = "degraded"
        body["impaired"] = REDIS_DOWN_IMPAIRS
    return JSONResponse(body, status_code=200)


@router.get("/metrics", response_class=PlainTextResponse)  # documented as text, as served
async def metrics(request: Request) -> Response:
    state: ApiState = request.app.state.api
    return Response(state.metrics.text(), media_type=METRICS_CONTENT_TYPE)
