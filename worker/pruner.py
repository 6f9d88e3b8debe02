"""Retention in the worker: every `interval`, one pruner across all workers prunes.

A round (the SQL and its rules: store/retention.py, store/orphans.py):

0. the partitions of `events` (store/partitions.py): those due made ahead of time,
   those left without a task dropped;
1. closed tasks past `TASKPLANE_RETENTION_CLOSED_TASKS_SECONDS`, `batch` tasks a
   transaction, until a batch comes back short (at most `MAX_BATCHES` a round);
2. outbox rows published more than `TASKPLANE_RETENTION_OUTBOX_PUBLISHED_SECONDS` ago;
3. tombstones older than `TASKPLANE_RETENTION_TOMBSTONES_SECONDS`;
4. debounced creations whose window closed more than
   `TASKPLANE_RETENTION_DEBOUNCED_REQUESTS_SECONDS` ago, and bulk operations (with
   their per-task outcomes) finished more than `TASKPLANE_RETENTION_BULK_OPERATIONS_SECONDS`
   ago (store/flow_retention.py);
5. orphans: ids the API accepted more than `TASKPLANE_RETENTION_ORPHAN_GRACE_SECONDS`
   ago with no event, whose workflow Temporal does not know (their start failed).

The steps themselves (policy, batches, `drain`): worker/prune_steps.py.

One pruner at a time across workers (and `taskplane prune`): a Postgres advisory
lock, as the reconciler's; the others skip the round. Each batch is its own short
transaction, and rows a recorder holds are skipped, never waited for.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.service import RPCError

from settings import Settings
from store.locks import try_exclusive
from store.orphans import forget_started, remove_orphan, unstarted_tasks
from store.partitions import PartitionPolicy, PartitionRound, maintain
from store.retention import (
    PRUNE_LOCK_KEY,
    PruneCounts,
    expire_tombstones,
    prune_published_outbox,
)
from telemetry.metrics import CountError, ignore_error
from worker.prune_steps import (
    ROW_BATCH_FACTOR,
    RetentionPolicy,
    WorkflowKnown,
    drain,
    prune_closed,
    prune_flow_rows,
    temporal_knows,
)

__all__ = ["Pruner", "PrunerStats", "RetentionPolicy", "build_pruner", "temporal_knows"]

log = logging.getLogger(__name__)

_START = (datetime.min.replace(tzinfo=UTC), "")


@dataclass
class PrunerStats:
    rounds: int = 0
    skipped_rounds: int = 0
    failed_rounds: int = 0
    rows: Counter[str] = field(default_factory=Counter)
    orphans: int = 0
    last_run: float | None = None  # unix time the last round finished
    last_run_seconds: float | None = None
    partitions_made: int = 0
    partitions_dropped: int = 0
    partition_bytes_dropped: int = 0
    partition_lock_timeouts: int = 0
    partitions: int | None = None  # of `events`, the default one not counted
    partitions_overdue: int | None = None


class Pruner:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        workflow_known: WorkflowKnown,
        policy: RetentionPolicy,
        *,
        interval: float = 60.0,
        count_error: CountError = ignore_error,
        partitions: PartitionPolicy | None = None,
    ) -> None:
        self._pool = pool
        self.partitions = partitions or PartitionPolicy()
        self._workflow_known = workflow_known
        self.policy = policy
        self._interval = interval
        self._count_error = count_error
        self._orphans_after = _START  # the orphan sweep's cursor: oldest claim first
        self.stats = PrunerStats()

    async def run(self) -> None:
        """Prune every `interval` until cancelled; a failed round is logged and retried."""
        while True:
            try:
                await self.round()
            except (psycopg.Error, RPCError, OSError, TimeoutError) as exc:
                self.stats.failed_rounds += 1
                self._count_error("pruner", type(exc).__name__)
                log.warning("prune round failed", extra={"error": str(exc)})
            await asyncio.sleep(self._interval)

    async def round(self) -> PruneCounts | None:
        """One round, if no other pruner holds the lock (None then)."""
        async with try_exclusive(self._pool, PRUNE_LOCK_KEY) as held:
            if not held:
                self.stats.skipped_rounds += 1
                return None
            return await self._round()

    async def _round(self) -> PruneCounts:
        started = time.monotonic()
        await self._partitions()
        counts = await prune_closed(self._pool, self.policy)
        rows = self.policy.batch_size * ROW_BATCH_FACTOR
        counts.rows["outbox"] += await drain(
            lambda: prune_published_outbox(
                self._pool, keep_seconds=self.policy.outbox_published_seconds, limit=rows
            ),
            rows,
        )
        counts.rows["pruned_tasks"] += await drain(
            lambda: expire_tombstones(
                self._pool, keep_seconds=self.policy.tombstones_seconds, limit=rows
            ),
            rows,
        )
        counts.rows.update(await prune_flow_rows(self._pool, self.policy))
        orphans = await self._orphans()
        elapsed = time.monotonic() - started
        self.stats.rounds += 1
        self.stats.rows.update(counts.rows)
        self.stats.rows.update(orphans.rows)
        self.stats.orphans += len(orphans.task_ids)
        self.stats.last_run = time.time()
        self.stats.last_run_seconds = elapsed
        total = sum(counts.rows.values()) + sum(orphans.rows.values())
        if total:
            log.info(
                "pruned",
                extra={
                    "tasks": counts.tasks,
                    "orphans": len(orphans.task_ids),
                    "rows": dict(counts.rows + orphans.rows),
                    "seconds": round(elapsed, 3),
                },
            )
        counts.add(orphans)
        return counts

    async def _partitions(self) -> PartitionRound:
        """Partition upkeep; a failure is counted and logged, and the round prunes on."""
        try:
            async with self._pool.connection() as conn:
                done = await maintain(
                    conn, self.partitions, keep_closed_seconds=self.policy.closed_tasks_seconds
                )
        except psycopg.Error as exc:
            self._count_error("partitions", type(exc).__name__)
            log.warning("event partition upkeep failed", extra={"error": str(exc)})
            return PartitionRound()
        stats = self.stats
        stats.partitions_made += len(done.made)
        stats.partitions_dropped += len(done.dropped)
        stats.partition_bytes_dropped += sum(p.bytes for p in done.dropped)
        stats.partition_lock_timeouts += done.lock_timeouts
        stats.partitions, stats.partitions_overdue = done.partitions, len(done.overdue)
        if done.overdue:
            log.warning(
                "event partitions past retention still hold tasks (open, or closed lately)",
                extra={"partitions": [p.name for p in done.overdue]},
            )
        return done

    async def _orphans(self) -> PruneCounts:
        """One page of ids accepted long ago with no event: remove those whose workflow
        never started; the page's last id is where the next round goes on."""
        counts = PruneCounts()
        page = await unstarted_tasks(
            self._pool,
            grace_seconds=self.policy.orphan_grace_seconds,
            after=self._orphans_after,
            limit=self.policy.batch_size,
        )
        self._orphans_after = (
            (page[-1].claimed_at, page[-1].task_id)
            if len(page) == self.policy.batch_size
            else _START
        )
        for task in page:
            if task.recorded:
                await forget_started(self._pool, task)
                continue
            if not task.pruned and await self._workflow_known(task.task_id):
                continue  # started, not yet run (no worker took it): not an orphan
            removed = await remove_orphan(self._pool, task)
            if removed.task_ids:
                log.info(
                    "removed the rows of a task whose workflow never started",
                    extra={"task_id": task.task_id, "rows": dict(removed.rows)},
                )
            counts.add(removed)
        return counts


def build_pruner(
    settings: Settings,
    client: Client,
    pool: AsyncConnectionPool,
    count_error: CountError = ignore_error,
) -> Pruner:
    return Pruner(
        pool,
        temporal_knows(client, rpc_timeout=settings.temporal_rpc_timeout_seconds),
        RetentionPolicy.from_settings(settings),
        interval=settings.retention_interval_seconds,
        count_error=count_error,
        partitions=PartitionPolicy.from_settings(settings),
    )
