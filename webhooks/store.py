"""Webhook endpoints and deliveries in Postgres.

The API writes a task's endpoint (its subscription) before the task starts; the
statement that records an event writes its delivery row (webhooks/enqueue.py); the
dispatcher leases due rows and records each attempt's outcome. Three rules live in
the SQL here and there:

* one delivery per event per endpoint (`UNIQUE (task_id, event_id)`);
* per-task order: a delivery is due only when no earlier one of its task is
  still pending, and a task's rows commit in `sequence` order (the recording
  statement holds the task row's lock), so a later event is never sent before an
  earlier one;
* one sender at a time: a claim takes rows `FOR UPDATE SKIP LOCKED` and leases
  them; the attempt counter is the lease's fencing token, so an outcome reported
  after the lease passed to another worker changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, cast

from psycopg_pool import AsyncConnectionPool

DeliveryStatus = Literal["pending", "delivered", "failed"]


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    task_id: str
    url: str
    secret: str = field(repr=False)  # never in a log line or a traceback
    secret_generated: bool
    event_types: tuple[str, ...] | None  # None: every type
    request_hash: str
    disabled_reason: str | None


@dataclass(frozen=True, slots=True)
class DeliveryState:
    event_id: str
    event_type: str
    sequence: int
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A leased delivery with everything needed to send it."""

    id: int
    task_id: str
    event_id: str
    event_type: str
    sequence: int
    attempt: int  # this attempt's number, from 1; the lease's fencing token
    created_at: datetime
    recorded_at: datetime
    url: str
    secret: str = field(repr=False)  # never in a log line or a traceback
    body: str  # the event's envelope, exactly as stored and served


@dataclass(frozen=True, slots=True)
class PendingStats:
    pending: int
    oldest_age_seconds: float


_ENDPOINT_COLUMNS = (
    "task_id, url, secret, secret_generated, event_types, request_hash, disabled_reason"
)

_SUBSCRIBE = f"""
INSERT INTO webhook_endpoints
    (task_id, url, secret, secret_generated, event_types, request_hash)
VALUES (%s, %s, %s, %s, %s::text[], %s)
ON CONFLICT (task_id) DO NOTHING
RETURNING {_ENDPOINT_COLUMNS}
"""

_CLAIM = """
WITH due AS (
    SELECT d.id FROM webhook_deliveries d
    WHERE d.status = 'pending'
      AND d.next_attempt_at <= now()
      AND (d.leased_until IS NULL OR d.leased_until <= now())
      AND NOT EXISTS (
          SELECT 1 FROM webhook_deliveries earlier
          WHERE earlier.task_id = d.task_id AND earlier.status = 'pending'
            AND earlier.seq < d.seq
      )
    ORDER BY d.next_attempt_at, d.id
    LIMIT %(limit)s
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE webhook_deliveries d
SET attempts = d.attempts + 1,
    leased_until = now() + make_interval(secs => %(lease)s::double precision)
FROM due, webhook_endpoints w, events e
WHERE d.id = due.id AND w.task_id = d.task_id AND e.event_id = d.event_id
RETURNING d.id, d.task_id, d.event_id, d.event_type, d.seq, d.attempts, d.created_at,
          e.recorded_at, w.url, w.secret, e.envelope
"""

# Every outcome is fenced by (status pending, attempts = the claim's attempt).
_DELIVERED = """
UPDATE webhook_deliveries
SET status = 'delivered', delivered_at = now(), finished_at = now(), leased_until = NULL,
    last_status_code = %s, last_error = NULL
WHERE id = %s AND attempts = %s AND status = 'pending'
"""

_RETRY = """
UPDATE webhook_deliveries
SET next_attempt_at = now() + make_interval(secs => %s::double precision),
    leased_until = NULL, last_status_code = %s, last_error = %s
WHERE id = %s AND attempts = %s AND status = 'pending'
"""

_FAILED = """
UPDATE webhook_deliveries
SET status = 'failed', finished_at = now(), leased_until = NULL,
    last_status_code = %s, last_error = %s
WHERE id = %s AND attempts = %s AND status = 'pending'
"""

_DISABLE = """
WITH endpoint AS (
    UPDATE webhook_endpoints SET disabled_at = now(), disabled_reason = %(reason)s
    WHERE task_id = %(task_id)s AND disabled_at IS NULL
    RETURNING task_id
)
UPDATE webhook_deliveries d
SET status = 'failed', finished_at = now(), leased_until = NULL,
    last_error = coalesce(d.last_error, %(reason)s)
FROM endpoint
WHERE d.task_id = endpoint.task_id AND d.status = 'pending'
"""

_PENDING_STATS = """
SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)
FROM webhook_deliveries WHERE status = 'pending'
"""


def _endpoint(row: Sequence[object]) -> WebhookEndpoint:
    task_id, url, secret, generated, types, request_hash, disabled_reason = row
    return WebhookEndpoint(
        task_id=str(task_id),
        url=str(url),
        secret=str(secret),
        secret_generated=bool(generated),
        event_types=tuple(types) if isinstance(types, list) else None,
        request_hash=str(request_hash),
        disabled_reason=str(disabled_reason) if disabled_reason is not None else None,
    )


class WebhookStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    # --- the API: subscriptions and their state ---------------------------------------

    async def subscribe(
        self,
        task_id: str,
        *,
        url: str,
        secret: str,
        secret_generated: bool,
        event_types: Sequence[str] | None,
        request_hash: str,
    ) -> tuple[WebhookEndpoint, bool]:
        """The task's endpoint and whether this call created it (False: it existed)."""
        types = list(event_types) if event_types is not None else None
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                _SUBSCRIBE, (task_id, url, secret, secret_generated, types, request_hash)
            )
            row = await cursor.fetchone()
            if row is not None:
                return _endpoint(row), True
        existing = await self.endpoint(task_id)
        if existing is None:  # pragma: no cover - endpoints are never deleted
            raise RuntimeError(f"webhook endpoint of task {task_id} vanished")
        return existing, False

    async def endpoint(self, task_id: str) -> WebhookEndpoint | None:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE task_id = %s",
                (task_id,),
            )
            row = await cursor.fetchone()
        return _endpoint(row) if row is not None else None

    async def deliveries(self, task_id: str) -> list[DeliveryState]:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                """
                SELECT event_id, event_type, seq, status, attempts, last_status_code,
                       last_error, next_attempt_at, delivered_at
                FROM webhook_deliveries WHERE task_id = %s ORDER BY seq
                """,
                (task_id,),
            )
            rows = await cursor.fetchall()
        return [
            DeliveryState(
                event_id=event_id,
                event_type=event_type,
                sequence=seq,
                status=cast(DeliveryStatus, status),  # the column's CHECK constraint
                attempts=attempts,
                last_status_code=code,
                last_error=error,
                next_attempt_at=next_at if status == "pending" else None,
                delivered_at=delivered_at,
            )
            for event_id, event_type, seq, status, attempts, code, error, next_at, delivered_at in (
                rows
            )
        ]

    # --- the dispatcher --------------------------------------------------------------

    async def claim(self, *, limit: int, lease_seconds: float) -> list[ClaimedDelivery]:
        """Lease up to `limit` due deliveries, at most one per task (the oldest pending)."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(_CLAIM, {"limit": limit, "lease": lease_seconds})
            rows = await cursor.fetchall()
        return [
            ClaimedDelivery(
                id=row[0],
                task_id=row[1],
                event_id=row[2],
                event_type=row[3],
                sequence=row[4],
                attempt=row[5],
                created_at=row[6],
                recorded_at=row[7],
                url=row[8],
                secret=row[9],
                body=row[10],
            )
            for row in rows
        ]

    async def mark_delivered(self, delivery: ClaimedDelivery, status_code: int) -> bool:
        return await self._fenced(_DELIVERED, (status_code, delivery.id, delivery.attempt))

    async def retry_later(
        self,
        delivery: ClaimedDelivery,
        *,
        delay_seconds: float,
        status_code: int | None,
        error: str,
    ) -> bool:
        return await self._fenced(
            _RETRY, (delay_seconds, status_code, error, delivery.id, delivery.attempt)
        )

    async def mark_failed(
        self, delivery: ClaimedDelivery, *, status_code: int | None, error: str
    ) -> bool:
        return await self._fenced(_FAILED, (status_code, error, delivery.id, delivery.attempt))

    async def disable(self, task_id: str, reason: str) -> None:
        """Stop sending to the task's endpoint: its pending deliveries fail now."""
        async with self._pool.connection() as conn:
            await conn.execute(_DISABLE, {"task_id": task_id, "reason": reason})

    async def pending_stats(self) -> PendingStats:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(_PENDING_STATS)
            row = await cursor.fetchone()
        count, age = row if row is not None else (0, 0)
        return PendingStats(pending=int(count), oldest_age_seconds=float(age))

    async def _fenced(self, statement: str, params: Sequence[object]) -> bool:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(statement, params)
            return cursor.rowcount == 1
