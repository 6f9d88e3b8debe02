"""Retention of flow control's own rows (issue 24; migration 0020 indexes them).

- `debounced_requests` (0017): the Idempotency-Key answer of a debounced creation. A row
  goes once its window closed longer ago than the retention: its task started (its
  `tasks` row) before then, or the task is gone (pruned, or its start failed). A window
  still open (the task claimed, not yet started: an `unstarted_tasks` row) keeps it,
  however old, so a repeat of the key still lands in that window.
- `bulk_operations` and `bulk_operation_tasks` (0016): an operation finished longer ago
  than the retention, its per-task outcome rows first (a bounded batch a statement, so a
  100,000-task operation is not one long delete), then the operation once it has none.
  An operation not finished (pending, selecting, running) is never pruned.

Each call is one bounded statement in its own transaction; the pruner repeats it until
a batch comes back short (worker/prune_steps.py `drain`).
"""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from store.retention import keep_interval

_DEBOUNCED = """
DELETE FROM debounced_requests d
USING (
    SELECT r.tenant, r.idempotency_key FROM debounced_requests r
    WHERE r.created_at < now() - %(keep)s
      AND NOT EXISTS (SELECT 1 FROM unstarted_tasks u WHERE u.task_id = r.task_id)
      AND NOT EXISTS (
          SELECT 1 FROM tasks t
          WHERE t.task_id = r.task_id AND t.created_at >= now() - %(keep)s
      )
    ORDER BY r.created_at
    LIMIT %(limit)s
    FOR UPDATE OF r SKIP LOCKED
) expired
WHERE d.tenant = expired.tenant AND d.idempotency_key = expired.idempotency_key
"""

_BULK_TASKS = """
DELETE FROM bulk_operation_tasks b
USING (
    SELECT t.bulk_id, t.task_id FROM bulk_operations o
    JOIN bulk_operation_tasks t ON t.bulk_id = o.id
    WHERE o.finished_at < now() - %(keep)s
    LIMIT %(limit)s
    FOR UPDATE OF t SKIP LOCKED
) expired
WHERE b.bulk_id = expired.bulk_id AND b.task_id = expired.task_id
"""

_BULK_OPERATIONS = """
DELETE FROM bulk_operations WHERE id = ANY(ARRAY(
    SELECT o.id FROM bulk_operations o
    WHERE o.finished_at < now() - %(keep)s
      AND NOT EXISTS (SELECT 1 FROM bulk_operation_tasks t WHERE t.bulk_id = o.id)
    ORDER BY o.finished_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
))
"""


async def _delete(pool: AsyncConnectionPool, statement: str, keep: float, limit: int) -> int:
    async with pool.connection() as conn:
        cursor = await conn.execute(statement, {"keep": keep_interval(keep), "limit": limit})
        return cursor.rowcount


async def prune_debounced_requests(
    pool: AsyncConnectionPool, *, keep_seconds: float, limit: int
) -> int:
    """At most `limit` debounced creations whose window closed over `keep_seconds` ago."""
    return await _delete(pool, _DEBOUNCED, keep_seconds, limit)


async def prune_bulk_outcomes(pool: AsyncConnectionPool, *, keep_seconds: float, limit: int) -> int:
    """At most `limit` per-task outcome rows of operations finished over `keep_seconds` ago."""
    return await _delete(pool, _BULK_TASKS, keep_seconds, limit)


async def prune_bulk_operations(
    pool: AsyncConnectionPool, *, keep_seconds: float, limit: int
) -> int:
    """At most `limit` operations finished over `keep_seconds` ago whose outcome rows are
    gone (`prune_bulk_outcomes` first)."""
    return await _delete(pool, _BULK_OPERATIONS, keep_seconds, limit)
