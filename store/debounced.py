"""Which task an Idempotency-Key of a debounced creation got (migration 0017)."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from store.pool import read_twice


@dataclass(frozen=True, slots=True)
class KeyedAnswer:
    task_id: str
    request_hash: str


class DebouncedRequests:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def find(self, tenant: str, key: str) -> KeyedAnswer | None:
        return await read_twice(lambda: self._find(tenant, key))

    async def _find(self, tenant: str, key: str) -> KeyedAnswer | None:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT task_id, request_hash FROM debounced_requests"
                " WHERE tenant = %s AND idempotency_key = %s",
                (tenant, key),
            )
            row = await cursor.fetchone()
        return None if row is None else KeyedAnswer(str(row[0]), str(row[1]))

    async def remember(self, tenant: str, key: str, answer: KeyedAnswer) -> KeyedAnswer:
        """Stores the answer unless a concurrent request with the key stored one first;
        either way, the stored one."""
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO debounced_requests (tenant, idempotency_key, task_id, request_hash)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (tenant, key, answer.task_id, answer.request_hash),
            )
        stored = await self.find(tenant, key)
        return stored or answer
