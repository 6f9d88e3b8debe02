"""The partitions of `events` (migration 0009): made ahead of time, dropped when empty of tasks.

`events` is partitioned by RANGE on `task_created_at`, the creation time of the event's
task (a copy of `tasks.created_at`, written by the recording statement): every event of
a task lives in one partition. Partitions are `interval` wide, aligned on 2000-01-01 UTC
(`events_YYYYMMDDtHHMMSS`, named after their lower bound), plus `events_default` for an
event whose range has none (it is never refused for want of a partition).

* `make_ahead` makes the partitions from now to `ahead` seconds from now (the ones
  missing; a range next to an existing partition of another width is clipped to fit).
  Each is made as a table of its own, given the default partition's rows of its range,
  then attached: ATTACH takes SHARE UPDATE EXCLUSIVE on `events`, which recordings
  (ROW EXCLUSIVE) do not wait for.
* `drop_empty` drops a partition whose range is past and holds no task any more:
  retention (store/retention.py) pruned every task of it — rows in every other table,
  leaving their events for this drop — and an open task is never pruned, so a partition
  holding one is never dropped. DETACH takes ACCESS EXCLUSIVE on `events` for an
  instant: it is tried with `lock_timeout`, so a recording waits at most that long
  (and the drop is tried again next round). The check that no task is left is repeated
  under that lock, so a task created in the range meanwhile keeps its partition.

Both run in the worker's pruning round (one worker at a time) and at migrate time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import AsyncConnection, sql

from settings import Settings
from store.retention import CLOSED

log = logging.getLogger(__name__)

# Partition bounds are multiples of the interval from here (the migration's `date_bin`).
ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)

_PARTITIONS = (
    "SELECT name, lower_bound, upper_bound FROM taskplane_event_partitions ORDER BY lower_bound"
)
_HAS_TASKS = "SELECT EXISTS (SELECT 1 FROM tasks WHERE created_at >= %s AND created_at < %s)"
# A task of the range that a prune with `keep` seconds of retention would keep.
_KEPT = """
SELECT EXISTS (SELECT 1 FROM tasks WHERE created_at >= %(lo)s AND created_at < %(hi)s
    AND NOT (status = ANY(%(closed)s)
             AND updated_at < now() - make_interval(secs => %(keep)s)
             AND created_at < now() - make_interval(secs => %(keep)s)))
"""
_SIZE = (
    "SELECT pg_total_relation_size(c.oid), c.reltuples FROM pg_class c WHERE c.oid = %s::regclass"
)


@dataclass(frozen=True, slots=True)
class PartitionPolicy:
    interval_seconds: float = 86_400.0
    ahead_seconds: float = 3 * 86_400.0
    lock_timeout_seconds: float = 0.5

    @classmethod
    def from_settings(cls, settings: Settings) -> PartitionPolicy:
        return cls(
            interval_seconds=settings.partition_interval_seconds,
            ahead_seconds=settings.partition_ahead_seconds,
            lock_timeout_seconds=settings.partition_lock_timeout_seconds,
        )


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    lower: datetime
    upper: datetime


@dataclass(frozen=True, slots=True)
class DroppedPartition:
    name: str
    lower: datetime
    upper: datetime
    bytes: int
    rows: int  # the planner's estimate (`reltuples`): counting would read the partition


@dataclass
class PartitionRound:
    made: list[Partition] = field(default_factory=list)
    dropped: list[DroppedPartition] = field(default_factory=list)
    # Partitions past `overdue_before` still holding a task (an open one, or one closed
    # too recently to prune): not dropped; worth an operator's look when it stays high.
    overdue: list[Partition] = field(default_factory=list)
    partitions: int = 0  # after the round, the default partition not counted
    lock_timeouts: int = 0


def bucket(when: datetime, interval: timedelta) -> datetime:
    """The lower bound of the aligned range `when` falls in."""
    return ORIGIN + ((when - ORIGIN) // interval) * interval


def missing_ranges(
    existing: list[Partition], now: datetime, interval: timedelta, ahead: timedelta
) -> list[tuple[datetime, datetime]]:
    """The ranges to make so that [bucket(now), now + ahead) is covered, none overlapping
    an existing partition (of another width, if the interval changed: then clipped)."""
    ranges: list[tuple[datetime, datetime]] = []
    at, end = bucket(now, interval), now + ahead
    while at < end:
        covering = next((p for p in existing if p.lower <= at < p.upper), None)
        if covering is not None:
            at = covering.upper
            continue
        upper = bucket(at, interval) + interval
        upper = min([upper, *(p.lower for p in existing if p.lower > at)])
        ranges.append((at, upper))
        at = upper
    return ranges


async def partitions(conn: AsyncConnection) -> list[Partition]:
    async with conn.transaction():  # its own, whatever the connection's mode
        cursor = await conn.execute(_PARTITIONS)
        return [Partition(str(n), lo, hi) for n, lo, hi in await cursor.fetchall()]


async def _has_tasks(conn: AsyncConnection, part: Partition) -> bool:
    cursor = await conn.execute(_HAS_TASKS, (part.lower, part.upper))
    return _true(await cursor.fetchone())


async def _lock_timeout(conn: AsyncConnection, seconds: float) -> None:
    await conn.execute(
        sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{int(seconds * 1000)}ms"))
    )


async def make_ahead(
    conn: AsyncConnection, policy: PartitionPolicy, *, now: datetime | None = None
) -> PartitionRound:
    """Make the missing partitions up to `ahead_seconds` from now, one transaction each
    (the connection's own: none may be open on it)."""
    result = PartitionRound()
    now = now or datetime.now(UTC)
    interval = timedelta(seconds=policy.interval_seconds)
    existing = await partitions(conn)
    for lower, upper in missing_ranges(
        existing, now, interval, timedelta(seconds=policy.ahead_seconds)
    ):
        try:
            async with conn.transaction():
                await _lock_timeout(conn, policy.lock_timeout_seconds)
                cursor = await conn.execute(
                    "SELECT taskplane_make_event_partition(%s, %s)", (lower, upper)
                )
                row = await cursor.fetchone()
        except psycopg.errors.LockNotAvailable:
            result.lock_timeouts += 1
            log.warning("event partition not made: lock timeout", extra={"lower": lower})
            break  # the next round tries again; the default partition takes events
        assert row is not None
        made = Partition(str(row[0]), lower, upper)
        result.made.append(made)
        log.info(
            "event partition made",
            extra={"partition": made.name, "lower": str(lower), "upper": str(upper)},
        )
    result.partitions = len(existing) + len(result.made)
    return result


async def drop_empty(
    conn: AsyncConnection,
    policy: PartitionPolicy,
    *,
    overdue_before: datetime,
    now: datetime | None = None,
) -> PartitionRound:
    """Drop every partition whose range is past and that holds no task any more, each in
    a transaction of its own (none may be open on the connection)."""
    result = PartitionRound()
    now = now or datetime.now(UTC)
    existing = await partitions(conn)
    result.partitions = len(existing)
    for part in existing:
        if part.upper > now:
            break
        async with conn.transaction():
            held = await _has_tasks(conn, part)
        if held:
            if part.upper <= overdue_before:
                result.overdue.append(part)
            continue
        try:
            dropped = await _drop(conn, part, policy)
        except psycopg.errors.LockNotAvailable:
            result.lock_timeouts += 1
            log.warning("event partition not dropped: lock timeout", extra={"partition": part.name})
            break
        if dropped is None:
            continue
        result.dropped.append(dropped)
        result.partitions -= 1
        log.info(
            "event partition dropped",
            extra={
                "partition": dropped.name,
                "lower": str(dropped.lower),
                "upper": str(dropped.upper),
                "bytes": dropped.bytes,
                "rows_estimate": dropped.rows,
            },
        )
    return result


async def _drop(
    conn: AsyncConnection, part: Partition, policy: PartitionPolicy
) -> DroppedPartition | None:
    """Detach and drop `part` in one transaction, unless a task of its range appeared."""
    name = sql.Identifier(part.name)
    async with conn.transaction() as tx:
        await _lock_timeout(conn, policy.lock_timeout_seconds)
        await conn.execute(sql.SQL("ALTER TABLE events DETACH PARTITION {}").format(name))
        # Under ACCESS EXCLUSIVE on `events` now: no recording can add to the range.
        if await _has_tasks(conn, part):
            raise psycopg.Rollback(tx)
        cursor = await conn.execute(_SIZE, (part.name,))
        size = await cursor.fetchone()
        assert size is not None
        await conn.execute(sql.SQL("DROP TABLE {}").format(name))
        return DroppedPartition(
            part.name, part.lower, part.upper, int(size[0]), max(int(size[1]), 0)
        )
    return None  # rolled back: a task of the range appeared


async def maintain(
    conn: AsyncConnection, policy: PartitionPolicy, *, keep_closed_seconds: float
) -> PartitionRound:
    """Make the partitions due, then drop the empty ones; a partition is overdue when it
    outlived its range by the closed-task retention and an interval more."""
    now = datetime.now(UTC)
    made = await make_ahead(conn, policy, now=now)
    late = timedelta(seconds=keep_closed_seconds + policy.interval_seconds)
    result = await drop_empty(conn, policy, overdue_before=now - late, now=now)
    result.made = made.made
    result.partitions += len(made.made)
    result.lock_timeouts += made.lock_timeouts
    return result


async def droppable_after_pruning(conn: AsyncConnection, *, keep_seconds: float) -> int:
    """How many partitions a prune with this closed-task retention would leave without
    a task, so dropped (a dry run: nothing changes)."""
    count = 0
    for part in await partitions(conn):
        if part.upper > datetime.now(UTC):
            break
        async with conn.transaction():
            cursor = await conn.execute(
                _KEPT, {"lo": part.lower, "hi": part.upper, "closed": CLOSED, "keep": keep_seconds}
            )
            count += not _true(await cursor.fetchone())
    return count


def _true(row: tuple[object, ...] | None) -> bool:
    return bool(row and row[0])
