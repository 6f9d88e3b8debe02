"""Bulk operations in the store (migration 0016): the operation, its matched tasks and
what became of each.

Selection reads the read model in keyset pages, oldest first, and writes each page's
task ids in the same statement, so a selection that dies half way resumes from its last
page (or from scratch: a repeat inserts nothing twice). Acting reads the tasks still
without an outcome; an outcome is written once, so the counts read from these rows are
exact across a worker crash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from schemas.bulk import (
    OUTCOME_DONE,
    OUTCOME_FAILED,
    OUTCOME_SKIPPED,
    BulkCounts,
    BulkOperation,
    BulkStatus,
)
from store.pool import read_twice
from store.tenants import DEFAULT_TENANT

_OPERATION_COLUMNS = "id, tenant, action, filter, status, created_at, updated_at, finished_at"

_CREATE = f"""
INSERT INTO bulk_operations (id, tenant, action, filter, request_hash)
VALUES (%(id)s, %(tenant)s, %(action)s, %(filter)s::jsonb, %(hash)s)
ON CONFLICT (id) DO NOTHING
RETURNING {_OPERATION_COLUMNS}, request_hash
"""

_RECORD = """
UPDATE bulk_operation_tasks SET outcome = %(outcome)s, reason = %(reason)s, acted_at = now()
WHERE bulk_id = %(bulk_id)s AND task_id = %(task_id)s AND outcome IS NULL
"""

_COUNTS = """
SELECT outcome, reason, count(*) AS n FROM bulk_operation_tasks
WHERE bulk_id = %s GROUP BY outcome, reason
"""


@dataclass(frozen=True, slots=True)
class StoredOperation:
    operation: BulkOperation
    request_hash: str


@dataclass(frozen=True, slots=True)
class SelectedPage:
    """How many tasks one selection page matched, and where the next page starts."""

    count: int
    last: tuple[datetime, str] | None


def _operation(row: dict[str, Any]) -> StoredOperation:
    request_hash = str(row.pop("request_hash"))
    return StoredOperation(BulkOperation.model_validate(row), request_hash)


class BulkStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def create(
        self,
        *,
        op_id: str,
        tenant: str,
        action: str,
        filter_json: dict[str, Any],
        request_hash: str,
    ) -> tuple[StoredOperation, bool]:
        """The operation, and whether this call made it (False: the id was taken, by a
        repeat of an idempotent request or by another)."""
        params = {
            "id": op_id,
            "tenant": tenant,
            "action": action,
            "filter": json.dumps(filter_json),
            "hash": request_hash,
        }
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(_CREATE, params)
            row = await cur.fetchone()
        if row is not None:
            return _operation(row), True
        existing = await self.get(op_id)
        assert existing is not None  # rows are never deleted while their id is in use
        return existing, False

    async def get(self, op_id: str) -> StoredOperation | None:
        return await read_twice(lambda: self._get(op_id))

    async def _get(self, op_id: str) -> StoredOperation | None:
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT {_OPERATION_COLUMNS}, request_hash FROM bulk_operations WHERE id = %s",
                (op_id,),
            )
            row = await cur.fetchone()
        return None if row is None else _operation(row)

    async def newest(self, tenant: str, limit: int) -> list[StoredOperation]:
        """The tenant's operations, newest first."""
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT {_OPERATION_COLUMNS}, request_hash FROM bulk_operations"
                " WHERE tenant = %s ORDER BY created_at DESC, id DESC LIMIT %s",
                (tenant, limit),
            )
            rows = await cur.fetchall()
        return [_operation(row) for row in rows]

    async def counts(self, op_id: str) -> BulkCounts:
        return await read_twice(lambda: self._counts(op_id))

    async def _counts(self, op_id: str) -> BulkCounts:
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(_COUNTS, (op_id,))
            rows = await cur.fetchall()
        counts = BulkCounts()
        by_outcome = {OUTCOME_DONE: 0, OUTCOME_SKIPPED: 0, OUTCOME_FAILED: 0}
        for row in rows:
            counts.matched += row["n"]
            if row["outcome"] in by_outcome:
                by_outcome[row["outcome"]] += row["n"]
            if row["reason"] is not None:
                key = f"{row['outcome']}: {row['reason']}"
                counts.reasons[key] = counts.reasons.get(key, 0) + row["n"]
        counts.done = by_outcome[OUTCOME_DONE]
        counts.skipped = by_outcome[OUTCOME_SKIPPED]
        counts.failed = by_outcome[OUTCOME_FAILED]
        return counts

    async def set_status(self, op_id: str, status: BulkStatus) -> None:
        finished = "now()" if status is BulkStatus.COMPLETED else "finished_at"
        async with self._pool.connection() as conn:
            await conn.execute(
                f"UPDATE bulk_operations SET status = %s, updated_at = now(),"
                f" finished_at = {finished} WHERE id = %s",
                (status.value, op_id),
            )

    async def select_page(
        self, operation: BulkOperation, after: tuple[datetime, str] | None, limit: int
    ) -> SelectedPage:
        """Match the next page of the tenant's tasks (oldest first, after `after`) and
        write them as the operation's tasks; tasks created after the operation was
        requested never match."""
        conditions, params = _matching(operation)
        if after is not None:
            conditions.append("(tasks.created_at, tasks.task_id) > (%s, %s)")
            params.extend(after)
        source = "tasks"
        if operation.tenant == DEFAULT_TENANT:
            source += " LEFT JOIN task_owners o USING (task_id)"
            conditions.append("(o.tenant = %s OR o.tenant IS NULL)")
        else:
            source += " JOIN task_owners o USING (task_id)"
            conditions.append("o.tenant = %s")
        params.append(operation.tenant)
        query = (
            f"WITH page AS (SELECT tasks.task_id, tasks.created_at FROM {source}"
            f" WHERE {' AND '.join(conditions)}"
            " ORDER BY tasks.created_at, tasks.task_id LIMIT %s),"
            " written AS (INSERT INTO bulk_operation_tasks (bulk_id, task_id)"
            " SELECT %s, task_id FROM page ON CONFLICT DO NOTHING)"
            " SELECT (SELECT count(*) FROM page) AS n, created_at, task_id FROM"
            " (SELECT 1) AS one LEFT JOIN"
            " (SELECT created_at, task_id FROM page ORDER BY created_at DESC, task_id DESC"
            " LIMIT 1) AS last ON true"
        )
        params.extend([limit, operation.id])
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query.encode(), params)
            row = await cur.fetchone()
        assert row is not None
        last = None if row["task_id"] is None else (row["created_at"], str(row["task_id"]))
        return SelectedPage(int(row["n"]), last)

    async def pending(self, op_id: str, limit: int) -> list[str]:
        """The next task ids without an outcome, in id order."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT task_id FROM bulk_operation_tasks WHERE bulk_id = %s AND outcome IS NULL"
                " ORDER BY task_id LIMIT %s",
                (op_id, limit),
            )
            return [str(row[0]) for row in await cursor.fetchall()]

    async def record(self, op_id: str, task_id: str, outcome: str, reason: str | None) -> bool:
        """Write the task's outcome unless it has one; whether this call wrote it."""
        params = {"bulk_id": op_id, "task_id": task_id, "outcome": outcome, "reason": reason}
        async with self._pool.connection() as conn:
            cursor = await conn.execute(_RECORD, params)
            return cursor.rowcount == 1


def _matching(operation: BulkOperation) -> tuple[list[str], list[Any]]:
    """The filter's conditions on `tasks`, and their parameters."""
    wanted = operation.filter
    before = operation.created_at
    if wanted.created_before is not None:
        before = min(before, wanted.created_before)
    conditions = ["tasks.created_at < %s"]
    params: list[Any] = [before]
    if wanted.status is not None:
        conditions.append("tasks.status = ANY(%s)")
        params.append([status.value for status in wanted.status])
    if wanted.type is not None:
        conditions.append("tasks.task_type = %s")
        params.append(wanted.type)
    if wanted.created_after is not None:
        conditions.append("tasks.created_at >= %s")
        params.append(wanted.created_after)
    if wanted.concurrency_key is not None:
        # Every task's key is on its owner row (`o`, migration 0021); a task claimed
        # before that has it only on an admission ticket (open, of a limited type).
        conditions.append(
            "(o.concurrency_key = %s OR (o.concurrency_key IS NULL AND EXISTS"
            " (SELECT 1 FROM admission_tickets a"
            " WHERE a.task_id = tasks.task_id AND a.concurrency_key = %s)))"
        )
        params.extend([wanted.concurrency_key, wanted.concurrency_key])
    return conditions, params
