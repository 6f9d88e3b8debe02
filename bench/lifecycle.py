"""Part 6: what a task costs the database, and that retention bounds it.

The real API and worker processes (`python -m api`, `python -m worker`); tasks
created through the API: `demo.pipeline` of `lifecycle_steps` instant steps
(2 + 2 x steps events), `lifecycle_concurrency` requests at a time. Sizes are read
from the catalogue (bench/dbsize.py: every table, partitions summed under their
parent), so whatever schema the tree has is what is measured.

Two variants, each on a fresh API and worker:

- `plain`: no webhook, no durable handler (the store's minimum for a task);
- `handler_webhook`: one durable handler (`bench.handler`, a no-op: its
  `processed_events` marks are the cost) and a webhook on every task, answered
  204 by a receiver in this process (`webhook_endpoints`, `webhook_deliveries`).

Each runs `lifecycle_rounds` rounds. A round: `lifecycle_tasks` tasks, wait until
none is open and every outbox row is published (and, with the handler, every
event marked processed and every delivery made), measure (bytes per task per
table: the growth over the round / tasks); prune with the production `Pruner`
(retention shortened to nothing: every closed task and published outbox row
goes; tombstones kept), measure; `VACUUM` (plain, standing in for autovacuum, which
runs on its own schedule: the soak, bench/soak.py, leaves it to autovacuum),
measure. The worker's own pruner is off, so the bench decides when pruning
happens. The database size after each round's vacuum is the steady state: once
the first round's space is free, later rounds reuse it and only the tombstones grow.
With `events` in time partitions (migration 0009), a pruned task's events stay until
their partition is dropped, a partition interval after retention: the rounds here all
fall in one partition, so its rows and bytes stay through every round.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg

from bench import dbsize, drive
from bench.context import BenchContext
from bench.procs import ChildProcess
from bench.webhook_sink import WebhookSink
from worker.pruner import Pruner, RetentionPolicy

SETTLE_TIMEOUT = 600.0
# Events of tasks still there (a pruned task's events stay in their time partition until
# it is dropped) not yet marked by the handler, plus deliveries not yet made.
_HANDLER_BEHIND = """
SELECT (SELECT count(*) FROM events e WHERE EXISTS (SELECT 1 FROM tasks t
            WHERE t.task_id = e.task_id))
     - (SELECT count(*) FROM processed_events WHERE consumer = 'bench-noop')
     + (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending')
"""


async def _always_known(task_id: str) -> bool:
    return True  # no orphan sweep here: every task of the bench was started


@contextlib.asynccontextmanager
async def _processes(ctx: BenchContext, *, handler: bool) -> AsyncIterator[ChildProcess]:
    extra = {"webhook_allow_private_networks": "true", "log_level": "WARNING"}
    api = ChildProcess("api", ctx.endpoints, ctx.log_dir, **extra)
    worker_settings = {**extra, "retention_enabled": "false", "webhook_poll_seconds": "0.2"}
    if handler:
        worker_settings["event_handlers"] = "bench.handler:handler"
    worker = ChildProcess(
        "worker", ctx.endpoints, ctx.log_dir, task_queue=api.task_queue, **worker_settings
    )
    for child in (worker, api):
        child.start()
    try:
        await asyncio.to_thread(api.wait_ready)
        await asyncio.sleep(2)  # the worker's pollers are up well before this
        yield api
    finally:
        for child in (api, worker):
            child.stop()


async def _measure(ctx: BenchContext) -> dbsize.DatabaseSize:
    async with ctx.pool.connection() as conn:
        return await dbsize.measure(conn)


async def _handler_settled(ctx: BenchContext) -> None:
    began = time.monotonic()
    while True:
        async with ctx.pool.connection() as conn:
            cursor = await conn.execute(_HANDLER_BEHIND)
            row = await cursor.fetchone()
        if row is None or int(row[0]) <= 0:
            return
        if time.monotonic() - began > SETTLE_TIMEOUT:
            raise TimeoutError(f"handler or webhooks {row[0]} events behind")
        await asyncio.sleep(0.5)


async def _prune(ctx: BenchContext) -> dict[str, int]:
    """Every closed task and published outbox row, by the production pruner's rounds."""
    policy = RetentionPolicy(closed_tasks_seconds=0, outbox_published_seconds=0)
    pruner = Pruner(ctx.pool, _always_known, policy)
    deleted: dict[str, int] = {}
    while True:
        counts = await pruner.round()
        if counts is None:  # another pruner holds the lock: not in this bench's database
            await asyncio.sleep(0.5)
            continue
        for table, rows in counts.rows.items():
            deleted[table] = deleted.get(table, 0) + rows
        if not counts.tasks:
            return deleted


async def _vacuum(ctx: BenchContext) -> None:
    async with await psycopg.AsyncConnection.connect(
        ctx.endpoints.database_url, autocommit=True
    ) as conn:
        await conn.execute("VACUUM")


async def _round(
    ctx: BenchContext, http: httpx.AsyncClient, body: dict[str, Any], *, handler: bool
) -> dict[str, Any]:
    tasks = ctx.sizes.lifecycle_tasks
    start = await _measure(ctx)
    began = time.monotonic()
    await drive.run_tasks(http, body, tasks, concurrency=ctx.sizes.lifecycle_concurrency)
    await drive.wait_settled(ctx.pool, limit_seconds=SETTLE_TIMEOUT)
    if handler:
        await _handler_settled(ctx)
    seconds = time.monotonic() - began
    ran = await _measure(ctx)
    deleted = await _prune(ctx)
    pruned = await _measure(ctx)
    await _vacuum(ctx)
    vacuumed = await _measure(ctx)
    result = {
        "tasks": tasks,
        "seconds": round(seconds, 1),
        "tasks_per_s": round(tasks / seconds, 1),
        "per_task": dbsize.per_task(start, ran, tasks),
        "per_task_total_bytes": round(
            (dbsize.total_bytes(ran) - dbsize.total_bytes(start)) / tasks, 1
        ),
        "pruned_rows": deleted,
        # What pruning leaves of a task until the tombstones expire (`pruned_tasks`).
        "after_prune_per_task": dbsize.per_task(start, pruned, tasks),
        "database_bytes": {
            "start": start.database_bytes,
            "after_tasks": ran.database_bytes,
            "after_prune": pruned.database_bytes,
            "after_vacuum": vacuumed.database_bytes,
        },
        "tables_after_vacuum": {
            name: {"total_bytes": t.total_bytes, "rows": t.rows}
            for name, t in vacuumed.tables.items()
        },
        "retained_bytes_per_task": round(
            (vacuumed.database_bytes - start.database_bytes) / tasks, 1
        ),
    }
    print(
        f"    {tasks} tasks in {seconds:.1f} s: {result['per_task_total_bytes']:.0f} B/task;"
        f" database {start.database_bytes / 2**20:.1f} -> {ran.database_bytes / 2**20:.1f} MiB,"
        f" pruned {pruned.database_bytes / 2**20:.1f}, vacuumed"
        f" {vacuumed.database_bytes / 2**20:.1f} MiB",
        flush=True,
    )
    return result


async def _variant(ctx: BenchContext, name: str, *, handler: bool, rounds: int) -> dict[str, Any]:
    print(f"  {name}", flush=True)
    sink = WebhookSink()
    url = await sink.start() if handler else None
    body = drive.pipeline(ctx.sizes.lifecycle_steps, url)
    results: list[dict[str, Any]] = []
    try:
        async with (
            _processes(ctx, handler=handler) as api,
            httpx.AsyncClient(base_url=api.base_url, timeout=60) as http,
        ):
            for _ in range(rounds):
                results.append(await _round(ctx, http, body, handler=handler))
    finally:
        await sink.stop()
    return {
        "durable_handlers": 1 if handler else 0,
        "webhook": handler,
        "webhook_requests_received": sink.received,
        "per_task": results[0]["per_task"],
        "per_task_total_bytes": results[0]["per_task_total_bytes"],
        "steady_database_bytes": results[-1]["database_bytes"]["after_vacuum"],
        "rounds": results,
    }


async def run(ctx: BenchContext) -> dict[str, Any]:
    steps = ctx.sizes.lifecycle_steps
    return {
        "task_input": drive.pipeline(steps)["input"],
        "events_per_task": 2 + 2 * steps,
        "variants": {
            "plain": await _variant(ctx, "plain", handler=False, rounds=ctx.sizes.lifecycle_rounds),
            "handler_webhook": await _variant(ctx, "handler_webhook", handler=True, rounds=1),
        },
    }
