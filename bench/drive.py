"""Tasks through the real API, and how many of them are still open (lifecycle, soak)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from psycopg_pool import AsyncConnectionPool

from store.retention import CLOSED

# Open: a `tasks` row not closed, or an id accepted whose first event is not recorded yet.
_OPEN = """
SELECT (SELECT count(*) FROM tasks WHERE status <> ALL(%(closed)s))
     + (SELECT count(*) FROM unstarted_tasks)
"""
_UNPUBLISHED = "SELECT count(*) FROM outbox WHERE published_at IS NULL"


def pipeline(steps: int, webhook_url: str | None = None) -> dict[str, Any]:
    """A `demo.pipeline` body: `steps` instant steps (2 + 2 x steps events), no ticks."""
    body: dict[str, Any] = {
        "type": "demo.pipeline",
        "input": {"steps": steps, "step_seconds": 0, "progress_ticks": 0},
    }
    if webhook_url is not None:
        body["webhook"] = {"url": webhook_url}
    return body


async def submit(http: httpx.AsyncClient, body: dict[str, Any]) -> str:
    created = await http.post("/tasks", json=body)
    created.raise_for_status()
    return str(created.json()["task_id"])


async def open_tasks(pool: AsyncConnectionPool) -> int:
    async with pool.connection() as conn:
        cursor = await conn.execute(_OPEN, {"closed": CLOSED})
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def unpublished(pool: AsyncConnectionPool) -> int:
    async with pool.connection() as conn:
        cursor = await conn.execute(_UNPUBLISHED)
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def wait_settled(pool: AsyncConnectionPool, *, limit_seconds: float) -> float:
    """Until no task is open and every outbox row is published; the seconds it took."""
    began = time.monotonic()
    while await open_tasks(pool) or await unpublished(pool):
        if time.monotonic() - began > limit_seconds:
            raise TimeoutError(
                f"{await open_tasks(pool)} tasks open, {await unpublished(pool)} outbox rows"
                f" unpublished after {limit_seconds} s"
            )
        await asyncio.sleep(0.5)
    return time.monotonic() - began


async def run_tasks(
    http: httpx.AsyncClient, body: dict[str, Any], count: int, *, concurrency: int
) -> list[str]:
    """Create `count` tasks, `concurrency` requests at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> str:
        async with gate:
            return await submit(http, body)

    return list(await asyncio.gather(*(one() for _ in range(count))))
