"""Liveness, readiness of every dependency, and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field

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


class CheckResult(BaseModel):
    status: Literal["up", "down"]
    error: str | None = Field(default=None, description="Why it is down.")


class Readiness(BaseModel):
    """Each dependency's state, and what this process can do with them."""

    status: Literal["ready", "degraded", "unavailable"] = Field(
        description="`degraded`: Redis is down, everything works, some of it later."
    )
    checks: dict[str, CheckResult] = Field(description="`postgres`, `redis`, `temporal`.")
    impaired: list[str] | None = Field(default=None, description="What is slower while degraded.")


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers. Checks no dependency (that is `/readyz`)."""
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


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={
        503: {
            "model": Readiness,
            "description": "Postgres or Temporal is down: this process cannot create,"
            " control or read tasks. Take it out of the load balancer.",
        }
    },
)
async def readyz(services: ServicesDep) -> JSONResponse:
    """Readiness: Postgres, Redis and Temporal are each checked (2 s timeout). 200 when
    this process can serve (`degraded` while only Redis is down), else 503."""
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
    """This API process's metrics in the Prometheus text format (docs/operations.md)."""
    state: ApiState = request.app.state.api
    return Response(state.metrics.text(), media_type=METRICS_CONTENT_TYPE)
