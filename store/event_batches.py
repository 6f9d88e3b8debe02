"""Append several events of one task in ONE transaction: all of them or none.

What a step writes in one flush (activities/live_buffer.py: output chunks, the merged
metadata, the latest progress) is recorded at once: one commit (one WAL flush) instead
of one per event, and, in psycopg's pipeline mode, one round trip for the lot. The
statement is the single append's (`store.events.append_statement`), run once per event
in order, so each event keeps everything it has alone: its dense `sequence` under the
task row's lock (held until the commit, so nothing of another recording lands between
two events of a batch), its outbox row, its webhook delivery, the read-model and
live-state triggers, dedupe by id, the event budget.

Two paths. The fast one sends every statement, then reads every result: when each
took its event, commit. When one took nothing (a closed chapter; a new run; the budget)
or failed on an id that exists (a duplicate: the batch, or part of it, was recorded
before and this is a retry, or a concurrent recording of it won), the transaction is
rolled back and the careful path runs the statements one at a time in a new
transaction, each followed by `settle` when it took nothing (duplicates come back as
such; a refusal is raised and rolls everything back, so no part of a batch is ever
written alone).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, LiteralString

import psycopg
from psycopg_pool import AsyncConnectionPool

from schemas import EventEnvelope
from store.append_rules import AppendResult, append_params, settle
from store.autocommit import APPEND_RACED_SQLSTATE
from store.budget import EventBudget
from store.event_errors import TaskPrunedError
from store.tombstones import PRUNED_SQLSTATE


class _NotAllTaken(Exception):
    """A statement of the fast path took nothing: roll back, take the careful path."""


async def append_batch(
    pool: AsyncConnectionPool,
    envelopes: Sequence[EventEnvelope],
    statement_for: Callable[[str], LiteralString],
    *,
    run_id: str | None,
    budget: EventBudget | None,
) -> list[AppendResult]:
    """Append `envelopes` (one task's, in this order) with `statement_for` their types
    (the single append's SQL) in one transaction; results in the same order."""
    if not envelopes:
        return []
    if len({envelope.subject for envelope in envelopes}) != 1:
        raise ValueError("a batch holds the events of one task")
    if any(envelope.sequence is not None for envelope in envelopes):
        raise ValueError("the store assigns `sequence`; the envelope must not carry one")
    params = [append_params(envelope, run_id, budget) for envelope in envelopes]
    statements = [statement_for(envelope.type) for envelope in envelopes]
    async with pool.connection() as conn:
        try:
            return await _all_at_once(conn, statements, params)
        except _NotAllTaken:
            pass  # rolled back: nothing of the batch was written
        except psycopg.DatabaseError as exc:
            _raise_refusal(exc, envelopes[0].subject)  # else: a raced id, rolled back
        async with conn.transaction():
            return [
                await _one(conn, statement, envelope, p, run_id, budget)
                for envelope, statement, p in zip(envelopes, statements, params, strict=True)
            ]


async def _all_at_once(
    conn: psycopg.AsyncConnection[Any],
    statements: list[LiteralString],
    params: list[dict[str, Any]],
) -> list[AppendResult]:
    async with conn.pipeline(), conn.transaction():
        # Every statement is sent before the first result is read: one round trip.
        cursors = [
            await conn.execute(statement, p)
            for statement, p in zip(statements, params, strict=True)
        ]
        rows = [await cursor.fetchone() for cursor in cursors]
        if any(row is None for row in rows):
            raise _NotAllTaken
    return [_taken(row) for row in rows]


async def _one(
    conn: psycopg.AsyncConnection[Any],
    statement: LiteralString,
    envelope: EventEnvelope,
    params: dict[str, Any],
    run_id: str | None,
    budget: EventBudget | None,
) -> AppendResult:
    while True:
        try:
            async with conn.transaction():  # a savepoint: a raced statement undoes only itself
                row = await (await conn.execute(statement, params)).fetchone()
        except psycopg.DatabaseError as exc:
            _raise_refusal(exc, envelope.subject)
            row = None  # the same id committed meanwhile: nothing of it was written
        if row is not None:
            return _taken(row)
        settled = await settle(conn, envelope, run_id, budget)
        if settled is not None:
            return settled
        # The task moved to this event's run meanwhile: the statement takes it now.


def _raise_refusal(exc: psycopg.DatabaseError, task_id: str) -> None:
    """Raise what `exc` means, unless it is a raced id (the caller tells a duplicate)."""
    if exc.sqlstate == PRUNED_SQLSTATE:  # the trigger found a tombstone
        raise TaskPrunedError(f"task {task_id} was pruned") from None
    if exc.sqlstate != APPEND_RACED_SQLSTATE:
        raise exc


def _taken(row: Any) -> AppendResult:
    outbox_id, sequence, envelope_json, _ = row
    return AppendResult(int(sequence), str(envelope_json), False, int(outbox_id))
