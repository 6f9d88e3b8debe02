"""RFC 9457 problem details: every error the API returns has this shape."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from temporalio.service import RPCError, RPCStatusCode

from telemetry.metrics import CountError

PROBLEM_JSON = "application/problem+json"

log = logging.getLogger(__name__)


class ProblemError(Exception):
    """Raise from a handler to answer with a problem+json body."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.headers = headers  # e.g. Retry-After, WWW-Authenticate
        self.extra = extra


def problem_body(
    status: int, detail: str, *, title: str | None = None, instance: str | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return body


def problem_response(
    status: int, detail: str, *, request: Request | None = None, **extra: Any
) -> JSONResponse:
    instance = request.url.path if request is not None else None
    return JSONResponse(
        problem_body(status, detail, instance=instance, **extra),
        status_code=status,
        media_type=PROBLEM_JSON,
    )


# A dependency that failed or did not answer: the request may work in a moment.
DEPENDENCY_RETRY_AFTER_SECONDS = 2
# Temporal's answers that mean "not now" rather than "no".
TEMPORAL_UNAVAILABLE = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.CANCELLED,
        RPCStatusCode.ABORTED,
    }
)


def dependency_failed(component: str, exc: Exception) -> ProblemError:
    """503 + Retry-After for a dependency that failed: never a bare 500 to the caller."""
    reason = str(exc) or type(exc).__name__
    return ProblemError(
        503,
        f"{component} is unavailable: {reason}"[:1000],
        headers={"Retry-After": str(DEPENDENCY_RETRY_AFTER_SECONDS)},
        component=component,
    )


def temporal_problem(exc: RPCError) -> ProblemError:
    if exc.status in TEMPORAL_UNAVAILABLE:
        return dependency_failed("Temporal", exc)
    return ProblemError(
        503,
        f"Temporal refused the request ({exc.status.name}): {exc.message}"[:1000],
        headers={"Retry-After": str(DEPENDENCY_RETRY_AFTER_SECONDS)},
        component="Temporal",
    )


# Query parameters that are resume points (sequence numbers or page cursors).
CURSOR_PARAMETERS = frozenset({"after", "cursor"})


def _is_cursor(loc: list[Any]) -> bool:
    return len(loc) >= 2 and loc[0] == "query" and loc[1] in CURSOR_PARAMETERS


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (RFC 9110: a 405 lists them all),
    found by asking the routes, so nested routers count too."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]


def install_problem_handlers(app: FastAPI, count_error: CountError) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        body = problem_body(
            exc.status, exc.detail, title=exc.title, instance=request.url.path, **exc.extra
        )
        return JSONResponse(
            body, status_code=exc.status, media_type=PROBLEM_JSON, headers=exc.headers
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        response = problem_response(exc.status_code, str(exc.detail), request=request)
        response.headers.update(exc.headers or {})
        allowed = _allowed_methods(request) if exc.status_code == 405 else []
        if allowed:  # Starlette names only the first route of the path
            response.headers["Allow"] = ", ".join(allowed)
        return response

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {
                "loc": list(err.get("loc", ())),
                "msg": err.get("msg", ""),
                "type": err.get("type", ""),
            }
            for err in exc.errors()
        ]
        # A cursor the client made up is a bad request (400), like a malformed
        # `Last-Event-ID`; other invalid parameters and bodies stay 422.
        status = 400 if errors and all(_is_cursor(e["loc"]) for e in errors) else 422
        return problem_response(status, "the request is not valid", request=request, errors=errors)

    async def on_temporal(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RPCError)
        count_error("api", "temporal")
        log.warning(
            "Temporal request failed",
            extra={"path": request.url.path, "status": exc.status.name, "error": exc.message},
        )
        return await on_problem(request, temporal_problem(exc))

    async def on_store(request: Request, exc: Exception) -> JSONResponse:
        count_error("api", "postgres")
        log.warning("Postgres request failed", extra={"path": request.url.path, "error": str(exc)})
        return await on_problem(request, dependency_failed("Postgres", exc))

    async def on_redis(request: Request, exc: Exception) -> JSONResponse:
        count_error("api", "redis")
        log.warning("Redis request failed", extra={"path": request.url.path, "error": str(exc)})
        return await on_problem(request, dependency_failed("Redis", exc))

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RPCError, on_temporal)
    app.add_exception_handler(psycopg.OperationalError, on_store)
    app.add_exception_handler(PoolTimeout, on_store)
    app.add_exception_handler(RedisConnectionError, on_redis)
    app.add_exception_handler(RedisTimeoutError, on_redis)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
