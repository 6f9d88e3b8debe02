"""Append events (deduplicated, densely sequenced, with outbox row) and read them back.

`append` is one SQL statement: it bumps the task row's `last_seq` (taking the
row lock until commit, so a later sequence can never commit before an earlier
one), inserts the event with that sequence spliced into its JSON, and inserts
the outbox row. A duplicate event id inserts nothing; the transaction is then
rolled back so the bumped `last_seq` is undone, and the stored copy is returned.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from schemas import EventEnvelope
from store.read_model import update_for

_APPEND = """
WITH task AS (
    INSERT INTO tasks AS t (task_id, task_type, status, progress, input, owner, result, error,
                           last_seq, created_at, updated_at)
    VALUES (%(task_id)s, %(task_type)s, COALESCE(%(status)s::text, 'pending'),
            COALESCE(%(progress)s::float8, 0), %(input)s, %(owner)s, %(result)s, %(error)s,
            1, %(time)s, %(time)s)
    ON CONFLICT (task_id) DO UPDATE SET
        last_seq   = t.last_seq + 1,
        task_type  = COALESCE(EXCLUDED.task_type, t.task_type),
        status     = CASE WHEN t.status IN ('completed', 'failed', 'cancelled') THEN t.status
                          ELSE COALESCE(%(status)s::text, t.status) END,
        progress   = CASE
            WHEN %(total_steps)s::int IS NOT NULL THEN GREATEST(t.progress, LEAST(100.0,
                100.0 * (t.steps_completed + %(step_fraction)s::float8) / %(total_steps)s::int))
            ELSE COALESCE(%(progress)s::float8, t.progress) END,
        steps_completed = t.steps_completed + CASE WHEN %(completes_step)s THEN 1 ELSE 0 END,
        input      = COALESCE(EXCLUDED.input, t.input),
        owner      = COALESCE(EXCLUDED.owner, t.owner),
        result     = COALESCE(EXCLUDED.result, t.result),
        error      = COALESCE(EXCLUDED.error, t.error),
        updated_at = EXCLUDED.updated_at
    RETURNING last_seq
), event AS (
    INSERT INTO events (task_id, seq, event_id, event_type, recorded_at, envelope)
    SELECT %(task_id)s, task.last_seq, %(event_id)s, %(event_type)s, %(time)s,
           left(%(envelope)s::text, -1) || ',"sequence":' || task.last_seq || '}'
    FROM task
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id, task_id, seq, envelope
)
INSERT INTO outbox (event_id, task_id, seq)
SELECT event_id, task_id, seq FROM event
RETURNING id, seq, (SELECT envelope FROM event)
"""

_EXISTING = "SELECT seq, envelope FROM events WHERE event_id = %s"


class DuplicateEventConflictError(RuntimeError):
    """An event id was reused for a different task: a bug in whoever made the id."""


@dataclass(frozen=True, slots=True)
class AppendResult:
    sequence: int
    envelope_json: str
    duplicate: bool
    outbox_id: int | None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    sequence: int
    event_type: str
    envelope_json: str


class EventStore:
    """Event writes and reads over one shared connection pool."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def append(self, envelope: EventEnvelope) -> AppendResult:
        if envelope.sequence is not None:
            raise ValueError("the store assigns `sequence`; the envelope must not carry one")
        update = update_for(envelope)
        params = {
            "task_id": envelope.subject,
            "task_type": update.task_type,
            "status": update.status.value if update.status else None,
            "progress": update.progress,
            "input": Jsonb(update.input) if update.input is not None else None,
            "owner": update.owner,
            "result": Jsonb(update.result) if update.result is not None else None,
            "error": update.error,
            # `t.steps_completed` is the count before this event: a completing step adds 1.
            "step_fraction": update.step_fraction,
            "total_steps": update.total_steps,
            "completes_step": update.completes_step,
            "time": envelope.time,
            "event_id": envelope.id,
            "event_type": envelope.type,
            "envelope": envelope.to_json(),
        }
        async with self._pool.connection() as conn:
            async with conn.transaction() as tx:
                cursor = await conn.execute(_APPEND, params)
                row = await cursor.fetchone()
                if row is None:
                    # Duplicate id: undo the sequence bump, then serve the stored copy.
                    raise psycopg.Rollback(tx)
            if row is not None:
                outbox_id, sequence, envelope_json = row
                return AppendResult(int(sequence), str(envelope_json), False, int(outbox_id))
            cursor = await conn.execute(_EXISTING, (envelope.id,))
            existing = await cursor.fetchone()
            await conn.commit()
        if existing is None:
            raise DuplicateEventConflictError(f"event {envelope.id} vanished during dedupe")
        return AppendResult(int(existing[0]), str(existing[1]), True, None)

    async def history(self, task_id: str, *, after: int = 0, limit: int = 100) -> list[StoredEvent]:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT seq, event_type, envelope FROM events"
                " WHERE task_id = %s AND seq > %s ORDER BY seq LIMIT %s",
                (task_id, after, limit),
            )
            rows = await cursor.fetchall()
        return [StoredEvent(int(seq), str(kind), str(text)) for seq, kind, text in rows]

    async def last_sequence(self, task_id: str) -> int | None:
        """The task's highest committed sequence, or None when the store has no such task."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute("SELECT last_seq FROM tasks WHERE task_id = %s", (task_id,))
            row = await cursor.fetchone()
        return None if row is None else int(row[0])
