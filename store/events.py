"""Append events (deduplicated, densely sequenced, with outbox row) and read them back.

`append` is one SQL statement in autocommit (one round trip; `append_many`, several
events in one transaction: store/event_batches.py): it bumps the task
row's `last_seq` (the row lock, held until commit, keeps sequences in commit order),
inserts the event with that sequence spliced into its JSON, its webhook delivery when
the task's webhook wants it (webhooks/enqueue.py), and the outbox row. A duplicate id
(a retry, or one committed while the statement waited on the row lock) is found by the
event's unique key, in its task's partition only; it fails the statement whole
(`taskplane_append_raced`), so nothing is written and no sequence is skipped, and
`settle` returns the stored copy.

Chapters (a Temporal reset): an event names the run that caused it. The fast
statement takes it only when the task is open and the run is the task's
current one; anything else falls to `settle` (store/append_rules.py), which,
under the task row's lock, tells a duplicate from an event of a closed chapter or of an older run
(refused: `ChapterClosedError`) and from the first event of a new run
(`NewRunError`: the recorder records `task.reset.v1` through `begin_chapter`,
then this event).

An event of a pruned task, even one racing the pruning, is refused: `TaskPrunedError`;
one past the task's event budget (store/budget.py): `EventBudgetExceededError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import LiteralString

import psycopg
from psycopg_pool import AsyncConnectionPool

from schemas import EventEnvelope
from schemas.tasks import TERMINAL_STATUSES
from store.append_rules import AppendResult as AppendResult
from store.append_rules import append_params, settle
from store.autocommit import APPEND_RACED_SQLSTATE, autocommit
from store.budget import EventBudget
from store.event_batches import append_batch
from store.event_errors import AlreadyCreatedError as AlreadyCreatedError
from store.event_errors import ChapterClosedError as ChapterClosedError
from store.event_errors import DuplicateEventConflictError as DuplicateEventConflictError
from store.event_errors import NewRunError as NewRunError
from store.event_errors import TaskPrunedError as TaskPrunedError
from store.event_groups import append_group
from store.pool import read_twice
from store.sql_text import compact
from store.tombstones import PRUNED_SQLSTATE
from webhooks.enqueue import DELIVERY_CTE, WAKE_COLUMN

# The terminal statuses as SQL: a closed chapter takes no event but a reset.
_CLOSED = "(" + ", ".join(f"'{status.value}'" for status in sorted(TERMINAL_STATUSES)) + ")"

# After a `task` CTE returning `last_seq` and `created_at`: the event (JSON with `sequence`
# spliced in; partition key: its task's `created_at`, store/partitions.py), its webhook
# delivery if wanted (webhooks/enqueue.py), its outbox row; when the id exists, nothing
# (the guard fails the statement, undoing the task row's bump).
_EVENT_AND_OUTBOX = (
    """, event AS (
    INSERT INTO events (task_id, seq, event_id, event_type, recorded_at, envelope, task_created_at)
    SELECT %(task_id)s, task.last_seq, %(event_id)s, %(event_type)s, %(time)s,
           left(%(envelope)s::text, -1) || ',"sequence":' || task.last_seq || '}',
           task.created_at
    FROM task
    ON CONFLICT (event_id, task_created_at) DO NOTHING
    RETURNING event_id, task_id, seq, envelope
)"""
    + DELIVERY_CTE
    + f"""
INSERT INTO outbox (event_id, task_id, seq)
SELECT event_id, task_id, seq FROM event
-- A bump with no event (the id exists: a retry, or a concurrent append won) fails it all.
WHERE (SELECT CASE WHEN EXISTS (SELECT FROM task) AND NOT EXISTS (SELECT FROM event)
                   THEN taskplane_append_raced(%(event_id)s) ELSE 0 END) = 0
RETURNING id, seq, (SELECT envelope FROM event), {WAKE_COLUMN}
"""
)

# Public for the migration test only, which runs them as the schema before 0009 had them.
APPEND_STATEMENT = (
    """
WITH task AS (
    INSERT INTO tasks AS t (task_id, task_type, status, progress, input, owner, result, error,
                           last_seq, created_at, updated_at, run_id, runs)
    VALUES (%(task_id)s, %(task_type)s, COALESCE(%(status)s::text, 'pending'),
            COALESCE(%(progress)s::float8, 0), %(input)s, %(owner)s, %(result)s, %(error)s,
            1, %(time)s, %(time)s, %(run_id)s::text,
            CASE WHEN %(run_id)s::text IS NULL THEN '{}'::text[] ELSE ARRAY[%(run_id)s::text] END)
    ON CONFLICT (task_id) DO UPDATE SET
        last_seq   = t.last_seq + 1,
        task_type  = COALESCE(EXCLUDED.task_type, t.task_type),
        -- a deferral noticed late (its task started already) leaves the status alone
        status     = CASE WHEN %(event_type)s::text = 'task.deferred.v1' THEN t.status
                          ELSE COALESCE(%(status)s::text, t.status) END,
        run_id     = COALESCE(t.run_id, EXCLUDED.run_id),
        runs       = CASE WHEN t.run_id IS NULL AND EXCLUDED.run_id IS NOT NULL
                          THEN array_append(t.runs, EXCLUDED.run_id) ELSE t.runs END,
        progress   = CASE
            WHEN %(total_steps)s::int IS NOT NULL THEN GREATEST(t.progress, LEAST(100.0,
                100.0 * (t.steps_completed + %(step_fraction)s::float8) / %(total_steps)s::int))
            ELSE COALESCE(%(progress)s::float8, t.progress) END,
        steps_completed = t.steps_completed + CASE WHEN %(completes_step)s THEN 1 ELSE 0 END,
        input      = COALESCE(EXCLUDED.input, t.input),
        owner      = COALESCE(EXCLUDED.owner, t.owner),
        result     = COALESCE(EXCLUDED.result, t.result),
        error      = COALESCE(EXCLUDED.error, t.error),
        updated_at = EXCLUDED.updated_at,
        workflow_task_failing_since = NULL
    -- Only an open task, and only its current run (or any run while none is known).
    WHERE t.status NOT IN {closed}{created}
      AND (%(run_id)s::text IS NULL OR t.run_id IS NULL OR t.run_id = %(run_id)s::text)
      -- the task's event budget (store/budget.py): NULL for an exempt event or no budget
      AND (%(budget)s::bigint IS NULL OR t.last_seq < %(budget)s::bigint)
    RETURNING last_seq, created_at
)
"""
    + _EVENT_AND_OUTBOX
).replace("{closed}", _CLOSED)
# `task.created.v1` only: never a second one (a reset run starting over: see `settle`); the
# first may follow a `task.deferred.v1`, recorded before the task's run began. A probe of
# `events` is set up over every partition at each execution, whether it runs or not, so
# the other events' statement has none (docs/performance.md, "Session 18").
_ONLY_THE_FIRST_CREATED = """
      AND t.run_id IS NULL AND NOT EXISTS (SELECT FROM events e
          WHERE e.task_id = t.task_id AND e.event_type = 'task.created.v1'
            AND e.task_created_at = t.created_at)"""
# Under psycopg's cached length (store/sql_text.py): the source above keeps its comments.
APPEND_CREATED_STATEMENT = compact(APPEND_STATEMENT.replace("{created}", _ONLY_THE_FIRST_CREATED))
APPEND_STATEMENT = compact(APPEND_STATEMENT.replace("{created}", ""))


def append_statement(event_type: str) -> LiteralString:
    """The append statement for an event of `event_type` (module globals, read per call)."""
    return APPEND_CREATED_STATEMENT if event_type == "task.created.v1" else APPEND_STATEMENT


# The first event of a new run: the task row moves to the new chapter in the same
# statement that appends `task.reset.v1` (unless another event of that run did it first).
_BEGIN_CHAPTER = (
    """
WITH task AS (
    UPDATE tasks AS t SET
        last_seq = t.last_seq + 1,
        status = 'running',
        progress = 0,
        steps_completed = 0,
        result = NULL,
        error = NULL,
        run_id = %(run_id)s::text,
        runs = array_append(t.runs, %(run_id)s::text),
        updated_at = %(time)s,
        workflow_task_failing_since = NULL
    WHERE t.task_id = %(task_id)s AND NOT (%(run_id)s::text = ANY (t.runs))
    RETURNING last_seq, created_at
)
"""
    + _EVENT_AND_OUTBOX
)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    sequence: int
    event_type: str
    envelope_json: str


class EventStore:
    """Event writes and reads over one shared connection pool."""

    def __init__(self, pool: AsyncConnectionPool, *, budget: EventBudget | None = None) -> None:
        self._pool = pool
        self._budget = budget  # store/budget.py; None: no per-task limit

    async def append(self, envelope: EventEnvelope, *, run_id: str | None = None) -> AppendResult:
        """Append one event of run `run_id` (None: a caller outside any run, no chapter check).

        Raises `ChapterClosedError` or `NewRunError` (above); nothing is written then.
        """
        if envelope.sequence is not None:
            raise ValueError("the store assigns `sequence`; the envelope must not carry one")
        params = append_params(envelope, run_id, self._budget)
        statement = append_statement(envelope.type)
        async with self._pool.connection() as conn, autocommit(conn):
            while True:
                try:  # one round trip, its own transaction
                    row = await (await conn.execute(statement, params)).fetchone()
                except psycopg.DatabaseError as exc:
                    if exc.sqlstate == PRUNED_SQLSTATE:  # the trigger found a tombstone
                        raise TaskPrunedError(f"task {envelope.subject} was pruned") from None
                    if exc.sqlstate != APPEND_RACED_SQLSTATE:
                        raise
                    row = None  # the same id committed meanwhile: nothing was written
                if row is not None:
                    outbox_id, sequence, envelope_json, _ = row
                    return AppendResult(int(sequence), str(envelope_json), False, int(outbox_id))
                async with conn.transaction():
                    settled = await settle(conn, envelope, run_id, self._budget)
                if settled is not None:
                    return settled
                # The task moved to this event's run meanwhile: the fast statement takes it.

    async def append_many(
        self, envelopes: Sequence[EventEnvelope], *, run_id: str | None = None
    ) -> list[AppendResult]:
        """Append events of one task and run in ONE transaction, in order: all or none
        (store/event_batches.py). Raises what `append` raises; nothing is written then."""
        return await append_batch(
            self._pool, envelopes, append_statement, run_id=run_id, budget=self._budget
        )

    async def append_group(
        self, appends: Sequence[tuple[EventEnvelope, str | None]]
    ) -> list[AppendResult | None] | None:
        """Append (envelope, run id) pairs of any tasks in ONE transaction, one round trip
        (store/event_groups.py): each one's result, None where the statement took nothing
        (that one goes through `append`); None when nothing was written at all."""
        return await append_group(self._pool, appends, append_statement, budget=self._budget)

    async def begin_chapter(self, envelope: EventEnvelope, *, run_id: str) -> AppendResult | None:
        """Append `task.reset.v1` and move the task to run `run_id`; None when another
        event of that run began the chapter first (or the task does not exist)."""
        params = {
            "task_id": envelope.subject,
            "run_id": run_id,
            "time": envelope.time,
            "event_id": envelope.id,
            "event_type": envelope.type,
            "envelope": envelope.to_json(),
        }
        async with self._pool.connection() as conn, conn.transaction() as tx:
            cursor = await conn.execute(_BEGIN_CHAPTER, params)
            row = await cursor.fetchone()
            if row is None:
                raise psycopg.Rollback(tx)
        if row is None:
            return None
        outbox_id, sequence, envelope_json, _ = row
        return AppendResult(int(sequence), str(envelope_json), False, int(outbox_id))

    async def history(self, task_id: str, *, after: int = 0, limit: int = 100) -> list[StoredEvent]:
        return await read_twice(lambda: self._history(task_id, after, limit))

    async def _history(self, task_id: str, after: int, limit: int) -> list[StoredEvent]:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT seq, event_type, envelope FROM events WHERE task_id = %(t)s"
                " AND task_created_at = (SELECT created_at FROM tasks WHERE task_id = %(t)s)"
                " AND seq > %(after)s ORDER BY seq LIMIT %(limit)s",
                {"t": task_id, "after": after, "limit": limit},
            )
            rows = await cursor.fetchall()
        return [StoredEvent(int(seq), str(kind), str(text)) for seq, kind, text in rows]

    async def last_sequence(self, task_id: str) -> int | None:
        """The task's highest committed sequence, or None when the store has no such task."""
        return await read_twice(lambda: self._last_sequence(task_id))

    async def _last_sequence(self, task_id: str) -> int | None:
        async with self._pool.connection() as conn:
            cursor = await conn.execute("SELECT last_seq FROM tasks WHERE task_id = %s", (task_id,))
            row = await cursor.fetchone()
        return None if row is None else int(row[0])
