"""Recorders the throughput and levers parts swap in for the production `EventRecorder`.

Each keeps the production `record(...)` signature, so the production
`TaskWorkflow`, `DemoActivities` and `record_event` run unchanged on top of
it, and each writes through the production `EventStore.append` (its SQL and
parameters, never a copy), changing only how connections and transactions
are handed to it:

- `NoIoRecorder`: validates and builds the envelope like production, then
  stops: no Postgres, no Redis. Separates what the workflow's shape costs
  (local activities, search attributes) from what the I/O costs.
- `BatchingRecorder`: group commit. Concurrent `record` calls queue up; one
  writer appends everything queued inside ONE transaction (each append its
  own savepoint, as `EventStore.append` nests), commits once, publishes, and
  marks the outbox rows in one UPDATE. Saves commits (fsyncs), not round trips.
- `unmarked_recorder`: production's recorder without the outbox marks (which it
  sends in batches, a moment after the publishes): what the marks still cost.
- `BatchAppender`: the one-transaction append, used to seed the replay part.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from activities.recorder import EventRecorder, NewEvent
from broker import BrokerError, EventBroker, topic_for
from schemas import EventEnvelope, check_size, validate_data
from schemas.envelope import schema_id
from schemas.workflow import RecordEventResult
from store import AppendResult, EventStore, Outbox

log = logging.getLogger(__name__)


def build_envelope(
    event_id: str, task_id: str, event_type: str, data: dict[str, Any]
) -> EventEnvelope:
    """What `EventRecorder.record` builds before it appends: validated data, time = now."""
    model = validate_data(event_type, data)
    envelope = EventEnvelope(
        id=event_id,
        type=event_type,
        subject=task_id,
        time=datetime.now(UTC),
        dataschema=schema_id(event_type),
        data=model.model_dump(mode="json"),
    )
    check_size(envelope)
    return envelope


class _OneConnection:
    """Stands in for the pool `EventStore` takes: every checkout is one given connection.

    Inside the caller's open transaction, `EventStore.append`'s own
    `conn.transaction()` becomes a savepoint (psycopg nests them).
    """

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self._conn = conn

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        yield self._conn


class _Unmarked(Outbox):
    """The outbox with the recorder's marks left out: what they still cost."""

    async def mark_published_many(self, outbox_ids: list[int]) -> None:
        pass


def unmarked_recorder(broker: EventBroker, pool: AsyncConnectionPool) -> EventRecorder:
    """Production's recorder without the outbox marks (a bound only: every row stays
    pending, for a relay to publish again after the grace period)."""
    return EventRecorder(EventStore(pool), _Unmarked(pool), broker)


class BatchAppender:
    """Append many events through `EventStore.append` inside one transaction."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def append_many(self, envelopes: Sequence[EventEnvelope]) -> list[AppendResult]:
        async with self._pool.connection() as conn, conn.pipeline(), conn.transaction():
            store = EventStore(cast(AsyncConnectionPool, _OneConnection(conn)))
            return [await store.append(envelope) for envelope in envelopes]


async def mark_published(pool: AsyncConnectionPool, outbox_ids: list[int]) -> None:
    """`Outbox.mark_published` for many rows in one statement."""
    if outbox_ids:
        async with pool.connection() as conn:
            await conn.execute(
                "UPDATE outbox SET published_at = now(), attempts = attempts + 1"
                " WHERE id = ANY(%s)",
                (outbox_ids,),
            )


class NoIoRecorder(EventRecorder):
    """Every public member of `EventRecorder` the activities use, with no I/O behind it.

    It does not call `EventRecorder.__init__` (no store, outbox or broker: that is the
    point), so each member the activities read is set or overridden here: a member the
    production recorder gains must be added here too (`tests/unit/test_bench_recorders.py`).
    """

    def __init__(self) -> None:
        self.progress_rates = None  # progress is never rate-limited here
        self.groups = None  # no group commit: nothing to commit

    async def record(
        self,
        *,
        event_id: str,
        task_id: str,
        event_type: str,
        data: dict[str, Any],
        run_id: str | None = None,
    ) -> RecordEventResult:
        build_envelope(event_id, task_id, event_type, data).to_json()
        return RecordEventResult(sequence=1, duplicate=False)

    async def record_many(
        self, task_id: str, events: Sequence[NewEvent], *, run_id: str | None = None
    ) -> list[RecordEventResult]:
        for event in events:
            build_envelope(event.event_id, task_id, event.event_type, event.data).to_json()
        return [RecordEventResult(sequence=1, duplicate=False) for _ in events]

    async def flush_marks(self) -> None:
        pass


@dataclass(slots=True)
class _Pending:
    envelope: EventEnvelope
    done: asyncio.Future[RecordEventResult]


class BatchingRecorder(EventRecorder):
    """Group commit: everything queued while the previous batch was written goes next."""

    def __init__(
        self,
        broker: EventBroker,
        pool: AsyncConnectionPool,
        *,
        publish_timeout: float = 1.0,
        max_batch: int = 100,
    ) -> None:
        super().__init__(
            EventStore(pool), Outbox(pool), broker, publish_timeout=publish_timeout, max_group=1
        )
        self._broker = broker
        self._publish_timeout = publish_timeout
        self._appender = BatchAppender(pool)
        self._pool = pool
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._max_batch = max_batch
        self.batch_sizes: list[int] = []

    async def record(
        self,
        *,
        event_id: str,
        task_id: str,
        event_type: str,
        data: dict[str, Any],
        run_id: str | None = None,  # a measured lever: no chapter checks (no resets in the bench)
    ) -> RecordEventResult:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_forever(), name="bench-batch-writer")
        envelope = build_envelope(event_id, task_id, event_type, data)
        done: asyncio.Future[RecordEventResult] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(envelope, done))
        return await done

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < self._max_batch:
                batch.append(self._queue.get_nowait())
            self.batch_sizes.append(len(batch))
            try:
                await self._write(batch)
            except Exception as exc:
                for pending in batch:
                    if not pending.done.done():
                        pending.done.set_exception(exc)

    async def _write(self, batch: list[_Pending]) -> None:
        appended = await self._appender.append_many([p.envelope for p in batch])
        published: list[int] = []
        for pending, row in zip(batch, appended, strict=True):
            if row.duplicate or row.outbox_id is None:
                continue
            try:
                async with asyncio.timeout(self._publish_timeout):
                    topic = topic_for(pending.envelope.subject)
                    await self._broker.publish(topic, row.envelope_json)
                published.append(row.outbox_id)
            except (BrokerError, TimeoutError):
                log.warning("bench batch publish failed; left to the outbox relay")
        await mark_published(self._pool, published)
        # Like production, a caller returns only once its outbox row is marked.
        for pending, row in zip(batch, appended, strict=True):
            pending.done.set_result(
                RecordEventResult(sequence=row.sequence, duplicate=row.duplicate)
            )
