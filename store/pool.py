"""The one Postgres pool a process owns, and the one retry its reads get.

The API's pool checks every connection as it leaves the pool: after a Postgres
restart or a network cut the pool holds dead connections, and without the check each
of them fails one caller's request; with it, readiness recovers as soon as Postgres is
back. The check (`check_if_readable`) looks at the socket first: an idle connection
in good health has nothing to read, while one the server closed or reset has its end
of file (or the server's FATAL) waiting. Only then does it pay psycopg's round trip
(`check_connection`), which every checkout paid before: ~6 % of the API's CPU under a
flood of creations (docs/performance.md, "Session 12"). The worker's pool does
not: its checkouts are on the recording path (two per event), where the round
trip would cost every event, and an activity that meets a dead connection is
retried by Temporal anyway.

Behind PgBouncer in transaction mode (`TASKPLANE_DATABASE_POOLER=transaction`) each
transaction may run on another server connection, so a statement psycopg prepared on
one (named `_pg3_0`, `_pg3_1`, …) is missing on the next ("prepared statement does not
exist") or clashes with another client's of the same name ("already exists"): such
pools are opened with `prepared_statements=False`.
"""

from __future__ import annotations

import logging
import select
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

T = TypeVar("T")


async def check_if_readable(conn: psycopg.AsyncConnection[Any]) -> None:
    """The pool's check of a connection it hands out: raises if it is dead."""
    readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    if readable:
        await AsyncConnectionPool.check_connection(conn)


async def open_pool(
    conninfo: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    timeout: float = 5.0,  # noqa: ASYNC109
    check: bool = False,
    prepared_statements: bool = True,
) -> AsyncConnectionPool:
    """`timeout`: how long a request waits for a connection before `PoolTimeout` (the API
    answers 503): while Postgres is away, fail fast rather than hang every request.
    `check`: test each connection as it is handed out (see the module docstring).
    `prepared_statements=False` for a pool behind PgBouncer in transaction mode (see the
    module docstring)."""
    pool = AsyncConnectionPool(
        conninfo,
        # psycopg prepares a query on the server from its 5th run on a connection;
        # None: never (every run is parsed again, an unnamed statement).
        kwargs={} if prepared_statements else {"prepare_threshold": None},
        min_size=min_size,
        max_size=max_size,
        open=False,
        name="taskplane",
        check=check_if_readable if check else None,
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
