"""Liveness, readiness of every dependency, and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from api.deps import ServicesDep
from api.services import Services
from telemetry.metrics import METRICS_CONTENT_TYPE, metrics_text

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_SECONDS = 2.0


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
    if not await services.temporal.service_client.check_health():
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
    ready = all(result["status"] == "up" for result in results)
    body = {"status": "ready" if ready else "unavailable", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", response_class=PlainTextResponse)  # documented as text, as served
async def metrics() -> Response:
    return Response(metrics_text(), media_type=METRICS_CONTENT_TYPE)
