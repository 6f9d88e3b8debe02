"""Group commit: the events of several recordings (any tasks) in ONE transaction and
one round trip.

A worker process records events of many tasks at once; each append alone is a pool
checkout, one statement and one commit. `append_group` takes the appends that queued
while another was in flight (activities/group_commit.py) and sends them in psycopg's
pipeline mode: BEGIN, the single append's statement (`store.events.append_statement`)
once per event, COMMIT, all before the first result is read. Each event keeps
everything the statement gives it alone: its dense `sequence` under its task row's
lock, its outbox row, webhook delivery, triggers, dedupe, budget.

The statement either writes its whole event or nothing at all, so a statement that
takes nothing (a closed chapter, a new run, the budget) leaves the others to commit:
the group is then exactly those statements run one after another, and that recording
is told to go alone (`None` in its place), where it meets its own outcome
(`EventStore.append`: `ChapterClosedError`, `NewRunError`, ...). A statement that fails
(an id that exists: a retry or a raced duplicate; a pruned task; a lost connection)
aborts the transaction: nothing of the group is written and every recording goes alone
(a duplicate is then told as such). So no recording's error touches another's event.

Lock order: a group holds the row locks of several tasks until its commit, so the
statements are sent in task id order (each task's events in their given order): two
groups, in this process or another, never wait on each other in a cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, LiteralString

import psycopg
from psycopg_pool import AsyncConnectionPool

from schemas import EventEnvelope
from store.append_rules import AppendResult, append_params
from store.budget import EventBudget


async def append_group(
    pool: AsyncConnectionPool,
    appends: Sequence[tuple[EventEnvelope, str | None]],
    statement_for: Callable[[str], LiteralString],
    *,
    budget: EventBudget | None,
) -> list[AppendResult | None] | None:
    """Append every (envelope, run id) of `appends` in one transaction: their results in
    the order of `appends`, None for one its statement did not take; None for the lot
    when the transaction failed and nothing was written (see the module)."""
    if any(envelope.sequence is not None for envelope, _ in appends):
        raise ValueError("the store assigns `sequence`; the envelope must not carry one")
    order = sorted(range(len(appends)), key=lambda index: appends[index][0].subject)
    params = [append_params(appends[i][0], appends[i][1], budget) for i in order]
    statements = [statement_for(appends[i][0].type) for i in order]
    try:
        async with pool.connection() as conn:
            rows = await _all_at_once(conn, statements, params)
    except psycopg.Error:
        return None  # rolled back (or never committed): each recording goes alone
    results: list[AppendResult | None] = [None] * len(appends)
    for index, row in zip(order, rows, strict=True):
        if row is not None:
            outbox_id, sequence, envelope_json, _ = row
            results[index] = AppendResult(int(sequence), str(envelope_json), False, int(outbox_id))
    return results


async def _all_at_once(
    conn: psycopg.AsyncConnection[Any],
    statements: list[LiteralString],
    params: list[dict[str, Any]],
) -> list[Any]:
    async with conn.pipeline(), conn.transaction():
        cursors = [
            await conn.execute(statement, p)
            for statement, p in zip(statements, params, strict=True)
        ]
        # BEGIN, the statements and COMMIT are queued; leaving the pipeline sends them
        # with one Sync and reads every result: one round trip. An error raises here.
    return [await cursor.fetchone() for cursor in cursors]
