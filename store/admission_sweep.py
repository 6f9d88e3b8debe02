"""What the reconciler's admission keeper asks the store (docs/flow-control.md).

Bounded questions, asked every reconcile round: keys with a free slot and a line
(stuck: a lost wake-up, a release that died half way), admitted tasks whose
wake-up signal is not confirmed, and a page of slot holders to check against
Temporal (a run that closed without giving its slot back: terminate, timeout).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from psycopg_pool import AsyncConnectionPool

from store.retention import keep_interval

STUCK = """
SELECT k.task_type, k.concurrency_key FROM admission_keys k
WHERE k.running < k.max_running AND EXISTS (
    SELECT 1 FROM admission_tickets t
    WHERE t.task_type = k.task_type AND t.concurrency_key = k.concurrency_key
      AND t.state = 'queued')
LIMIT %(limit)s
"""
UNWOKEN = """
SELECT task_id FROM admission_tickets
WHERE state = 'running' AND NOT woken AND admitted_at < now() - %(after)s
ORDER BY admitted_at LIMIT %(limit)s
"""
# Waiting tickets whose task ended already (a parked run cancelled in Temporal before its
# claim: it closes with no slot to give back, and its place in line would wait for its turn).
_ENDED_WAITERS = """
SELECT a.task_id FROM admission_tickets a JOIN tasks t USING (task_id)
WHERE a.state = 'queued' AND t.status IN ('completed', 'failed', 'cancelled', 'terminated')
LIMIT %(limit)s
"""
_WOKEN = "UPDATE admission_tickets SET woken = true WHERE task_id = ANY(%s)"
_HOLDERS = """
SELECT task_id, admitted_at FROM admission_tickets
WHERE state = 'running' AND woken AND admitted_at < now() - %(after)s AND task_id > %(cursor)s
ORDER BY task_id LIMIT %(limit)s
"""
_RUNNING = """
SELECT concurrency_key, running, max_running FROM admission_keys
WHERE task_type = %(task_type)s AND concurrency_key = ANY(%(keys)s)
"""


@dataclass(frozen=True, slots=True)
class KeyCount:
    concurrency_key: str
    running: int
    limit: int


async def stuck_keys(pool: AsyncConnectionPool, limit: int) -> list[tuple[str, str]]:
    """(task type, key) of keys with a free slot and someone waiting."""
    async with pool.connection() as conn:
        rows = await (await conn.execute(STUCK, {"limit": limit})).fetchall()
    return [(str(t), str(k)) for t, k in rows]


async def unwoken(pool: AsyncConnectionPool, older_than: float, limit: int) -> list[str]:
    """Admitted tasks not confirmed told, admitted more than `older_than` seconds ago."""
    async with pool.connection() as conn:
        params = {"after": keep_interval(older_than), "limit": limit}
        rows = await (await conn.execute(UNWOKEN, params)).fetchall()
    return [str(r[0]) for r in rows]


async def ended_waiters(pool: AsyncConnectionPool, limit: int) -> list[str]:
    """Tasks still in a key's line whose task has ended."""
    async with pool.connection() as conn:
        rows = await (await conn.execute(_ENDED_WAITERS, {"limit": limit})).fetchall()
    return [str(r[0]) for r in rows]


async def mark_woken(pool: AsyncConnectionPool, task_ids: Sequence[str]) -> None:
    if task_ids:
        async with pool.connection() as conn:
            await conn.execute(_WOKEN, (list(task_ids),))


async def slot_holders(
    pool: AsyncConnectionPool, *, older_than: float, after: str, limit: int
) -> list[tuple[str, datetime]]:
    """A page of tasks holding a slot for more than `older_than` s, in task id order;
    not one whose wake-up is still due (a task parked in the store has no run before it)."""
    async with pool.connection() as conn:
        params = {"after": keep_interval(older_than), "cursor": after, "limit": limit}
        rows = await (await conn.execute(_HOLDERS, params)).fetchall()
    return [(str(t), at) for t, at in rows]


async def running_per_key(
    pool: AsyncConnectionPool, task_type: str, keys: Sequence[str]
) -> dict[str, KeyCount]:
    """How many tasks hold a slot of each key (tests and the bench sample this)."""
    async with pool.connection() as conn:
        params = {"task_type": task_type, "keys": list(keys)}
        rows = await (await conn.execute(_RUNNING, params)).fetchall()
    return {str(k): KeyCount(str(k), int(r), int(m)) for k, r, m in rows}
