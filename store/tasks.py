"""Reads of the task read model: one task, and pages of tasks newest first."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from store.pool import read_twice
from store.tenants import DEFAULT_TENANT

_COLUMNS = (
    "task_id, task_type, status, progress, input, owner, result, error, last_seq,"
    " created_at, updated_at, workflow_task_failing_since"
)
# The same columns, unambiguous when `task_owners` is joined in.
_SELECTED = ", ".join(
    name if name == "task_id" else f"tasks.{name}" for name in _COLUMNS.split(", ")
)
# Longer than any cursor this store hands out (an ISO timestamp, `|`, a UUID, base64).
MAX_CURSOR_LENGTH = 200


class InvalidCursorError(ValueError):
    """A page cursor that this store did not hand out."""


@dataclass(frozen=True, slots=True)
class TaskRecord:
    task_id: str
    task_type: str | None
    status: str
    progress: float
    input: dict[str, Any] | None
    owner: str | None
    result: dict[str, Any] | None
    error: str | None
    last_seq: int
    created_at: datetime
    updated_at: datetime
    workflow_task_failing_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class TaskPage:
    tasks: list[TaskRecord]
    next_cursor: str | None


def encode_cursor(created_at: datetime, task_id: str) -> str:
    raw = f"{created_at.isoformat()}|{task_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The cursor's position; anything this store did not hand out is refused here,
    before it reaches SQL (a NUL byte or an absurd date would fail there as a 5xx)."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise InvalidCursorError(f"invalid cursor: longer than {MAX_CURSOR_LENGTH} characters")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, task_id = raw.split("|", 1)
        created_at = datetime.fromisoformat(when)
        if created_at.tzinfo is None:
            raise ValueError("cursor time without a time zone")
        return created_at, str(uuid.UUID(task_id))
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError) as exc:
        raise InvalidCursorError(f"invalid cursor {cursor[:40]!r}") from exc


class TaskReader:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def get(self, task_id: str) -> TaskRecord | None:
        return await read_twice(lambda: self._get(task_id))

    async def _get(self, task_id: str) -> TaskRecord | None:
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(f"SELECT {_COLUMNS} FROM tasks WHERE task_id = %s", (task_id,))
            row = await cur.fetchone()
        return None if row is None else TaskRecord(**row)

    async def get_or_pruned(self, task_id: str) -> tuple[TaskRecord | None, bool]:
        """The task, and whether it was pruned (its tombstone, store/tombstones.py), read
        in one statement: one snapshot, so a pruning that commits meanwhile shows as the
        one or the other, never as neither (which the API would take for `pending`)."""
        return await read_twice(lambda: self._get_or_pruned(task_id))

    async def _get_or_pruned(self, task_id: str) -> tuple[TaskRecord | None, bool]:
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT {_SELECTED}, EXISTS (SELECT 1 FROM pruned_tasks WHERE task_id = %(id)s)"
                " AS pruned FROM (SELECT 1) AS one LEFT JOIN tasks ON tasks.task_id = %(id)s",
                {"id": task_id},
            )
            row = await cur.fetchone()
        assert row is not None  # the LEFT JOIN's one row
        pruned = bool(row.pop("pruned"))
        return (None if row["task_id"] is None else TaskRecord(**row)), pruned

    async def page(
        self,
        *,
        status: str | None = None,
        task_type: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        tenant: str | None = None,
    ) -> TaskPage:
        """Newest first; with `tenant`, only that tenant's tasks (ownership in
        `task_owners`; a task without a row is `DEFAULT_TENANT`'s)."""
        conditions: list[str] = []
        params: list[Any] = []
        source = "tasks"
        if tenant is not None:
            if tenant == DEFAULT_TENANT:
                source = "tasks LEFT JOIN task_owners o USING (task_id)"
                conditions.append("(o.tenant = %s OR o.tenant IS NULL)")
            else:
                source = "tasks JOIN task_owners o USING (task_id)"
                conditions.append("o.tenant = %s")
            params.append(tenant)
        if status is not None:
            conditions.append("status = %s")
            params.append(status)
        if task_type is not None:
            conditions.append("task_type = %s")
            params.append(task_type)
        if cursor is not None:
            created_at, task_id = decode_cursor(cursor)
            conditions.append("(tasks.created_at, task_id) < (%s, %s)")
            params.extend([created_at, task_id])
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        params.append(limit + 1)
        query = (
            f"SELECT {_SELECTED} FROM {source} {where}"
            " ORDER BY tasks.created_at DESC, task_id DESC LIMIT %s"
        )
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query.encode(), params)
            rows = await cur.fetchall()
        records = [TaskRecord(**row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit and records:
            last = records[-1]
            next_cursor = encode_cursor(last.created_at, last.task_id)
        return TaskPage(records, next_cursor)
