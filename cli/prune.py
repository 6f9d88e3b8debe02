"""`taskplane prune`: retention on demand, for operators (docs/operations.md#retention).

    taskplane prune --closed-before 30d [--dry-run]

Prunes what the worker's pruner prunes (worker/pruner.py), with the closed-task
cutoff given here: tasks closed more than DURATION ago, whole; outbox rows
published more than `TASKPLANE_RETENTION_OUTBOX_PUBLISHED_SECONDS` ago; tombstones
older than `TASKPLANE_RETENTION_TOMBSTONES_SECONDS`; then the partitions of `events`
left without a task (store/partitions.py). Orphans are the worker's alone
(telling one needs Temporal). `--dry-run` counts and deletes nothing. It waits for
the pruners' lock, so it never runs beside a worker's round.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import re
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from devstack.aio import run_sync
from settings import Settings

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

    from store.retention import PruneCounts
    from worker.pruner import RetentionPolicy

log = logging.getLogger("taskplane.prune")

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> float:
    """Seconds in `90`, `45s`, `15m`, `12h`, `30d`, `2w` or a sum such as `1d12h`."""
    text = text.strip().lower()
    try:
        seconds = float(text)
    except ValueError:
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise argparse.ArgumentTypeError(
                f"not a duration: {text!r} (e.g. 30d, 12h, 90m, 1d12h, or seconds)"
            ) from None
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"a duration cannot be negative: {text!r}")
    return seconds


def cmd_prune(settings: Settings, args: argparse.Namespace) -> int:
    # Imported here: the launcher's other commands need neither the store nor the worker.
    from worker.pruner import RetentionPolicy

    policy = dataclasses.replace(
        RetentionPolicy.from_settings(settings), closed_tasks_seconds=args.closed_before
    )
    counts = run_sync(
        # It waits on the pruners' lock as a session lock: the direct URL, not a pooler.
        lambda: prune(settings.require_database_direct_url(), policy, args.dry_run, settings)
    )
    sys.stdout.write(render(counts, dry_run=args.dry_run))
    sys.stdout.flush()
    return 0


async def prune(
    database_url: str, policy: RetentionPolicy, dry_run: bool, settings: Settings | None = None
) -> PruneCounts:
    """Count (dry run) or prune, holding the pruners' lock."""
    from store import open_pool
    from store.partitions import PartitionPolicy, drop_empty, droppable_after_pruning
    from store.retention import PRUNE_LOCK_KEY, count_expired

    partitions = PartitionPolicy() if settings is None else PartitionPolicy.from_settings(settings)

    pool = await open_pool(database_url, min_size=2, max_size=2, timeout=30)
    try:
        async with pool.connection() as lock:
            log.info("waiting for the pruners' lock (a worker's round ends first)")
            await lock.execute("SELECT pg_advisory_lock(%s)", (PRUNE_LOCK_KEY,))
            try:
                if dry_run:
                    counts = await count_expired(
                        pool,
                        keep_seconds=policy.closed_tasks_seconds,
                        outbox_keep_seconds=policy.outbox_published_seconds,
                        tombstone_keep_seconds=policy.tombstones_seconds,
                    )
                    async with pool.connection() as conn:
                        counts.rows["event_partitions"] = await droppable_after_pruning(
                            conn, keep_seconds=policy.closed_tasks_seconds
                        )
                    return counts
                counts = await _prune_all(pool, policy)
                async with pool.connection() as conn:
                    done = await drop_empty(conn, partitions, overdue_before=datetime.now(UTC))
                counts.rows["event_partitions"] = len(done.dropped)
                return counts
            finally:
                await lock.execute("SELECT pg_advisory_unlock(%s)", (PRUNE_LOCK_KEY,))
    finally:
        await pool.close()


async def _prune_all(pool: AsyncConnectionPool, policy: RetentionPolicy) -> PruneCounts:
    from store.retention import PruneCounts, expire_tombstones, prune_published_outbox
    from worker.prune_steps import (
        MAX_BATCHES,
        ROW_BATCH_FACTOR,
        drain,
        prune_closed,
        prune_flow_rows,
    )

    counts = PruneCounts()
    while True:  # a round takes at most MAX_BATCHES batches: go on until the end
        batch = await prune_closed(pool, policy)
        counts.rows.update(batch.rows)  # not the ids: a backlog may hold millions
        log.info("pruned %d closed tasks", batch.tasks)
        if batch.tasks < MAX_BATCHES * policy.batch_size:
            break
    rows = policy.batch_size * ROW_BATCH_FACTOR
    while True:
        deleted = await drain(
            lambda: prune_published_outbox(
                pool, keep_seconds=policy.outbox_published_seconds, limit=rows
            ),
            rows,
        )
        counts.rows["outbox"] += deleted
        if deleted < MAX_BATCHES * rows:
            break
    while True:
        deleted = await drain(
            lambda: expire_tombstones(pool, keep_seconds=policy.tombstones_seconds, limit=rows),
            rows,
        )
        counts.rows["pruned_tasks"] += deleted
        if deleted < MAX_BATCHES * rows:
            break
    counts.rows.update(await prune_flow_rows(pool, policy))  # debounce, bulk operations
    return counts


def render(counts: PruneCounts, *, dry_run: bool) -> str:
    """One line a table: what was deleted (or would be)."""
    what = "would delete" if dry_run else "deleted"
    others = {t: n for t, n in counts.rows.items() if t not in counts.by_table()}
    rows = {**counts.by_table(), **others, "event_partitions": counts.rows["event_partitions"]}
    width = max(len(table) for table in rows)
    lines = [f"{'table':<{width}}  {what}"]
    lines += [f"{table:<{width}}  {n}" for table, n in rows.items()]
    note = (
        "tasks pruned leave a tombstone each in pruned_tasks (404, no late event);"
        " the events of a task in a partition go when the whole partition is dropped"
    )
    return "\n".join(lines) + f"\n({note})\n"


def register(commands: Any) -> None:
    """Add `prune` to the `taskplane` parser (cli/main.py)."""
    parser = commands.add_parser(
        "prune",
        help="delete closed tasks (and what belongs to them) past a retention",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--closed-before",
        type=parse_duration,
        required=True,
        metavar="DURATION",
        help="prune tasks closed longer ago than this (30d, 12h, 90m, 1d12h, or seconds)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="count what would be deleted; delete nothing"
    )
    parser.set_defaults(handler=cmd_prune)
