"""Durable handlers in the real worker process: every event, one effect, across a SIGKILL.

A second worker process is started with `TASKPLANE_EVENT_HANDLERS` naming a
test handler (tests/e2e/effect_handler.py) that writes one row per event.
The session stack's worker runs the tasks; the events reach the handler
through the Redis stream and its consumer group.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from broker import topic_for
from broker.redis import RedisBroker
from store import open_pool
from tests.e2e.conftest import ProcessStack
from tests.polling import until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

STREAM = "taskplane:events"
TASK_INPUT = {"steps": 2, "step_seconds": 0.2, "progress_ticks": 2}


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    pool = await open_pool(database_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


async def effects(pool: AsyncConnectionPool, table: str, task_id: str) -> dict[str, int]:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            sql.SQL("SELECT event_id, count(*) FROM {} WHERE task_id = %s GROUP BY 1").format(
                sql.Identifier(table)
            ),
            (task_id,),
        )
        return {str(event_id): int(n) for event_id, n in await cursor.fetchall()}


async def run_task(http: httpx.AsyncClient) -> tuple[str, list[dict[str, Any]]]:
    created = await http.post("/tasks", json={"type": "demo.pipeline", "input": TASK_INPUT})
    task_id = created.json()["task_id"]
    events: list[dict[str, Any]] = []

    async def completed() -> bool:
        page = (await http.get(f"/tasks/{task_id}/history", params={"limit": 1000})).json()
        events[:] = page["events"]
        return bool(events) and events[-1]["type"] == "task.completed.v1"

    await until(completed, within=30, what=f"task {task_id} to complete")
    return task_id, events


async def all_handled(
    pool: AsyncConnectionPool, table: str, task_id: str, events: list[dict[str, Any]]
) -> dict[str, int]:
    seen: dict[str, int] = {}

    async def every_event_seen() -> bool:
        seen.update(await effects(pool, table, task_id))
        return len(seen) == len(events)

    await until(every_event_seen, within=30, what=f"the effects of task {task_id}")
    return await effects(pool, table, task_id)


async def group_ready(admin: Redis, group: str) -> None:
    async def exists() -> bool:
        groups = await admin.xinfo_groups(STREAM) if await admin.exists(STREAM) else []
        return any(g["name"] == group for g in groups)

    await until(exists, within=30, what=f"the worker's consumer group {group}")


def _entry_id(entry_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence)


async def drained(admin: Redis, group: str) -> None:
    """Until the group was handed the stream's newest entry (as of now) and acknowledged
    everything: what was published before has been handled, however many times."""
    entries: Any = await admin.xrevrange(STREAM, count=1)
    ((newest, _),) = entries

    async def handled() -> bool:
        (info,) = [g for g in await admin.xinfo_groups(STREAM) if g["name"] == group]
        delivered = _entry_id(info["last-delivered-id"]) >= _entry_id(newest)
        return delivered and info["pending"] == 0

    await until(handled, within=30, what=f"group {group} to drain")


async def test_the_worker_runs_durable_handlers_once_per_event_across_a_crash(
    stack: ProcessStack, services: Any, tmp_path: Path, db: AsyncConnectionPool, redis_url: str
) -> None:
    test_id = uuid.uuid4().hex[:8]
    table, group = f"e2e_effects_{test_id}", f"test-effects-{test_id}"
    async with db.connection() as conn:
        await conn.execute(
            sql.SQL("CREATE TABLE {} (event_id text NOT NULL, task_id text NOT NULL)").format(
                sql.Identifier(table)
            )
        )
    handlers = ProcessStack(
        services,
        tmp_path,
        event_handlers="tests.e2e.effect_handler:handler",
        test_effect_table=table,
        test_effect_group=group,
        handler_claim_idle_seconds="1",
    )
    admin = Redis.from_url(redis_url, decode_responses=True)
    publisher = RedisBroker(redis_url, client_name="taskplane-test-duplicates")
    await publisher.connect()
    http = httpx.AsyncClient(base_url=stack.base_url, timeout=30)
    try:
        handlers.start("worker")
        await group_ready(admin, group)

        task_id, events = await run_task(http)
        assert await all_handled(db, table, task_id, events) == {e["id"]: 1 for e in events}
        # Workers publish and consume but never subscribe: no pub/sub connection is held.
        names = {c["name"] for c in await admin.client_list()}
        assert "taskplane-worker-publish" in names
        assert "taskplane-worker-pubsub" not in names

        # The broker repeats itself (a relay retry, say): still one effect per event.
        for event in events[:3]:
            stored = await http.get(
                f"/tasks/{task_id}/history", params={"after": event["sequence"] - 1, "limit": 1}
            )
            await publisher.publish(
                topic_for(task_id), stored.text.split('"events":[', 1)[1].rsplit("]", 1)[0]
            )
        await drained(admin, group)  # the repeats were handed to the handler and acked
        assert await effects(db, table, task_id) == {e["id"]: 1 for e in events}

        # Killed, events go on without it; started again, it catches up from its group.
        handlers.stop("worker", kill=True)
        task_id, events = await run_task(http)
        assert await effects(db, table, task_id) == {}
        handlers.start("worker")
        assert await all_handled(db, table, task_id, events) == {e["id"]: 1 for e in events}
    finally:
        handlers.stop_all()
        await http.aclose()
        await publisher.close()
        await admin.xgroup_destroy(STREAM, group)
        await admin.aclose()
        async with db.connection() as conn:
            await conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))
