"""The one Postgres pool a process owns, and the one retry its reads get.

Every connection is checked (`check_connection`: a round trip) as it leaves the
pool: after a Postgres restart or a network cut the pool holds dead connections,
and without the check each of them fails one request. The check costs one
round trip per checkout and makes readiness recover as soon as Postgres is back.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

T = TypeVar("T")


async def open_pool(
    conninfo: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    timeout: float = 5.0,  # noqa: ASYNC109
) -> AsyncConnectionPool:
    """`timeout`: how long a request waits for a connection before `PoolTimeout` (the API
    answers 503): while Postgres is away, fail fast rather than hang every request."""
    pool = AsyncConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        open=False,
        name="taskplane",
        check=AsyncConnectionPool.check_connection,
        timeout=timeout,
    )
    await pool.open(wait=True, timeout=30)
    return pool


async def read_twice(read: Callable[[], Awaitable[T]]) -> T:
    """Run an idempotent read; if its connection broke under it, once more on another.

    Only for reads: a write whose connection broke may or may not have committed.
    """
    try:
        return await read()
    except psycopg.OperationalError as exc:
        log.warning("a read lost its connection; trying once more", extra={"error": str(exc)})
        return await read()
