"""The pruner's steps (worker/pruner.py runs them in a round, `taskplane prune` until
the end): its policy, closed tasks a batch a transaction, bounded deletes repeated
until a short batch, flow control's own rows (store/flow_retention.py), and whether
Temporal knows a task's workflow."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from schemas.workflow import workflow_id_for
from settings import Settings
from store.flow_retention import (
    prune_bulk_operations,
    prune_bulk_outcomes,
    prune_debounced_requests,
)
from store.retention import PruneCounts, prune_closed_batch

log = logging.getLogger("worker.pruner")

# Batches of closed tasks in one round: a backlog is worked off over several rounds.
MAX_BATCHES = 100
# Outbox rows and tombstones are small: this many times `batch` a statement.
ROW_BATCH_FACTOR = 10
# After each batch the pruner rests as long as the batch took: it never takes more than
# half of what Postgres gives it, however large the backlog (a batch of 100 tasks took
# 30-40 ms on the 2-core test machine: over 1,000 tasks/s still, 1M a day is 12/s).
REST_FACTOR = 1.0
# Whether Temporal knows the task's workflow (any run, open or closed).
WorkflowKnown = Callable[[str], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    closed_tasks_seconds: float = 30 * 86_400.0
    outbox_published_seconds: float = 86_400.0
    tombstones_seconds: float = 30 * 86_400.0
    orphan_grace_seconds: float = 3600.0
    batch_size: int = 100
    debounced_requests_seconds: float = 30 * 86_400.0
    bulk_operations_seconds: float = 30 * 86_400.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        return cls(
            closed_tasks_seconds=settings.retention_closed_tasks_seconds,
            outbox_published_seconds=settings.retention_outbox_published_seconds,
            tombstones_seconds=settings.retention_tombstones_seconds,
            orphan_grace_seconds=settings.retention_orphan_grace_seconds,
            batch_size=settings.retention_batch_size,
            debounced_requests_seconds=settings.retention_debounced_requests_seconds,
            bulk_operations_seconds=settings.retention_bulk_operations_seconds,
        )


async def prune_closed(pool: AsyncConnectionPool, policy: RetentionPolicy) -> PruneCounts:
    """Closed tasks past retention, a batch a transaction, until a short batch."""
    counts = PruneCounts()
    for _ in range(MAX_BATCHES):
        started = time.monotonic()
        async with pool.connection() as conn, conn.transaction():
            batch = await prune_closed_batch(
                conn, keep_seconds=policy.closed_tasks_seconds, limit=policy.batch_size
            )
        if batch.task_ids:
            log.debug(
                "pruned closed tasks",
                extra={"tasks": len(batch.task_ids), "task_ids": batch.task_ids},
            )
        counts.add(batch)
        if batch.tasks < policy.batch_size:
            break
        await asyncio.sleep((time.monotonic() - started) * REST_FACTOR)
    return counts


async def drain(delete: Callable[[], Awaitable[int]], limit: int) -> int:
    """Repeat a bounded delete until it takes fewer than `limit` rows (at most MAX_BATCHES)."""
    total = 0
    for _ in range(MAX_BATCHES):
        started = time.monotonic()
        deleted = await delete()
        total += deleted
        if deleted < limit:
            break
        await asyncio.sleep((time.monotonic() - started) * REST_FACTOR)
    return total


def temporal_knows(client: Client, *, rpc_timeout: float = 10.0) -> WorkflowKnown:
    """`WorkflowKnown` from a Temporal client: a describe; NOT_FOUND is False. A Temporal
    that does not answer fails the round within `rpc_timeout` (the lock is let go)."""

    async def known(task_id: str) -> bool:
        try:
            await client.get_workflow_handle(workflow_id_for(task_id)).describe(
                rpc_timeout=timedelta(seconds=rpc_timeout)
            )
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return True

    return known


async def prune_flow_rows(pool: AsyncConnectionPool, policy: RetentionPolicy) -> Counter[str]:
    """Debounced creations and finished bulk operations past their retention, by table."""
    rows = policy.batch_size * ROW_BATCH_FACTOR
    counts: Counter[str] = Counter()
    counts["debounced_requests"] = await drain(
        lambda: prune_debounced_requests(
            pool, keep_seconds=policy.debounced_requests_seconds, limit=rows
        ),
        rows,
    )
    keep = policy.bulk_operations_seconds
    counts["bulk_operation_tasks"] = await drain(
        lambda: prune_bulk_outcomes(pool, keep_seconds=keep, limit=rows), rows
    )
    counts["bulk_operations"] = await drain(
        lambda: prune_bulk_operations(pool, keep_seconds=keep, limit=rows), rows
    )
    return +counts  # tables with nothing deleted left out
