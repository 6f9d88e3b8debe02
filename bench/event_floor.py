"""A lever of part 5: the least an event can cost under the contract, as a yardstick.

The contract (docs/architecture.md): an event is committed with its outbox row in one
transaction, the task's row numbering it, before the workflow moves on; then published
once to the live topic and the durable stream. `FloorRecorder` does exactly that and
nothing more, with the same libraries production uses, the way production
holds them: one prepared statement on a pool connection in autocommit (the task row's
upsert, the event, the outbox row: one round trip, one commit), and one EVALSHA of
production's publish script (`broker.redis_publish.PublishScript`). Left out, on purpose:
the data's validation, chapters, the event budget, deduplication by id, the raced-id
check, webhook deliveries, group commit, timeouts, logs, metrics and the outbox marks
(its rows stay pending until `close`, outside what is measured).

It is never a way to record: production's `EventRecorder.record` is measured beside it,
in the same rounds (bench/levers.py `record() floor`, bench/throughput.py
`taskplane_floor`), so the difference is what the rules and the machinery around the two
round trips cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from psycopg_pool import AsyncConnectionPool

from activities.recorder import EventRecorder, NewEvent
from broker import topic_for
from broker.redis_clients import command_client
from broker.redis_publish import PublishScript
from schemas.workflow import RecordEventResult
from store.autocommit import autocommit

_FLOOR_STATEMENT = """
WITH task AS (
  INSERT INTO tasks AS t (task_id, last_seq) VALUES (%(task_id)s, 1)
  ON CONFLICT (task_id) DO UPDATE SET last_seq = t.last_seq + 1, updated_at = now()
  RETURNING last_seq, created_at
), event AS (
  INSERT INTO events (task_id, seq, event_id, event_type, recorded_at, envelope, task_created_at)
  SELECT %(task_id)s, task.last_seq, %(event_id)s, %(event_type)s, now(),
         left(%(envelope)s::text, -1) || ',"sequence":' || task.last_seq || '}', task.created_at
  FROM task
  RETURNING event_id, task_id, seq, envelope
)
INSERT INTO outbox (event_id, task_id, seq)
SELECT event_id, task_id, seq FROM event
RETURNING seq, (SELECT envelope FROM event)
"""


class FloorRecorder(EventRecorder):
    """Production's recorder members at the contract's floor (see above).

    Like `bench.recorders.NoIoRecorder` it does not call `EventRecorder.__init__`, and
    overrides every public member the activities use (tests/unit/test_bench_recorders.py).
    """

    def __init__(self, pool: AsyncConnectionPool, redis_url: str, *, stream_key: str) -> None:
        self.progress_rates = None  # progress is never rate-limited here
        self.groups = None  # no group commit
        self._pool = pool
        # Production's command client (bounded reads) and script, its own pool of sockets.
        self._redis = command_client(redis_url, 1.0, "taskplane-bench-floor")
        self._publish = PublishScript(self._redis, stream_key=stream_key, stream_maxlen=100_000)

    async def record(
        self,
        *,
        event_id: str,
        task_id: str,
        event_type: str,
        data: dict[str, Any],
        run_id: str | None = None,
    ) -> RecordEventResult:
        envelope = orjson.dumps(
            {
                "specversion": "1.0",
                "id": event_id,
                "source": "/taskplane",
                "type": event_type,
                "subject": task_id,
                "time": datetime.now(UTC).isoformat(),
                "datacontenttype": "application/json",
                "data": data,
            }
        ).decode()
        params = {
            "task_id": task_id,
            "event_id": event_id,
            "event_type": event_type,
            "envelope": envelope,
        }
        async with self._pool.connection() as conn, autocommit(conn):
            cursor = await conn.execute(_FLOOR_STATEMENT, params, prepare=True)
            row = await cursor.fetchone()
        assert row is not None  # the statement always writes: no rule can refuse it
        sequence, stored = row
        await self._publish([(topic_for(task_id), stored)])
        return RecordEventResult(sequence=int(sequence), duplicate=False)

    async def record_many(
        self, task_id: str, events: Sequence[NewEvent], *, run_id: str | None = None
    ) -> list[RecordEventResult]:
        return [
            await self.record(
                event_id=event.event_id,
                task_id=task_id,
                event_type=event.event_type,
                data=event.data,
            )
            for event in events
        ]

    async def flush_marks(self) -> None:
        pass  # no marks: see `close`

    async def close(self) -> None:
        """Mark every pending outbox row published, so no relay publishes them again
        (the bench's own database: nothing else is pending in it), and let Redis go."""
        async with self._pool.connection() as conn, autocommit(conn):
            await conn.execute("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")
        await self._redis.aclose()
