"""A tenant's schedules (migration 0015): who owns which Temporal Schedule, and the
request that made (or last changed) it. Temporal holds the running state (paused,
next and recent runs); this table answers lists and ownership at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

_COLUMNS = "tenant, schedule_id, temporal_id, request, request_hash, created_at, updated_at"


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    tenant: str
    schedule_id: str
    temporal_id: str
    request: dict[str, Any]
    request_hash: str
    created_at: datetime
    updated_at: datetime


def _row(values: tuple[Any, ...]) -> ScheduleRow:
    return ScheduleRow(*values)


class ScheduleRows:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def insert(
        self,
        tenant: str,
        schedule_id: str,
        temporal_id: str,
        request: dict[str, Any],
        request_hash: str,
    ) -> tuple[ScheduleRow, bool]:
        """Insert a schedule, or find the one already stored under its id: (row, inserted)."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "INSERT INTO schedules (tenant, schedule_id, temporal_id, request, request_hash)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (tenant, schedule_id) DO NOTHING"
                f" RETURNING {_COLUMNS}",
                (tenant, schedule_id, temporal_id, Jsonb(request), request_hash),
            )
            inserted = await cursor.fetchone()
        if inserted is not None:
            return _row(inserted), True
        existing = await self.get(tenant, schedule_id)
        if existing is None:  # deleted in between: the caller's next try inserts it
            raise LookupError(schedule_id)
        return existing, False

    async def get(self, tenant: str, schedule_id: str) -> ScheduleRow | None:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM schedules WHERE tenant = %s AND schedule_id = %s",
                (tenant, schedule_id),
            )
            found = await cursor.fetchone()
        return None if found is None else _row(found)

    async def page(self, tenant: str, *, after: str | None, limit: int) -> list[ScheduleRow]:
        """The tenant's schedules in id order, after `after` (a keyset cursor)."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM schedules WHERE tenant = %s AND schedule_id > %s"
                " ORDER BY schedule_id LIMIT %s",
                (tenant, after or "", limit),
            )
            rows = await cursor.fetchall()
        return [_row(values) for values in rows]

    async def update(self, tenant: str, schedule_id: str, request: dict[str, Any]) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE schedules SET request = %s, updated_at = now()"
                " WHERE tenant = %s AND schedule_id = %s",
                (Jsonb(request), tenant, schedule_id),
            )

    async def delete(self, tenant: str, schedule_id: str) -> bool:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "DELETE FROM schedules WHERE tenant = %s AND schedule_id = %s",
                (tenant, schedule_id),
            )
        return cursor.rowcount > 0
