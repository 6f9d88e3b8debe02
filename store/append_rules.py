"""The rules of one append that both paths share (`EventStore.append`, one event in
autocommit, and `store.event_batches`, many in one transaction): its parameters, and
why the append statement took nothing (`settle`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from schemas import EventEnvelope
from schemas.tasks import TERMINAL_STATUSES
from store.budget import EventBudget, limit_for
from store.event_errors import (
    AlreadyCreatedError,
    ChapterClosedError,
    DuplicateEventConflictError,
    NewRunError,
    TaskPrunedError,
)
from store.read_model import update_for
from store.tombstones import is_pruned

_EXISTING = "SELECT seq, envelope FROM events WHERE event_id = %s"
_TASK_LOCKED = "SELECT status, run_id, runs, last_seq FROM tasks WHERE task_id = %s FOR UPDATE"


@dataclass(frozen=True, slots=True)
class AppendResult:
    sequence: int
    envelope_json: str
    duplicate: bool
    outbox_id: int | None


def append_params(
    envelope: EventEnvelope, run_id: str | None, budget: EventBudget | None
) -> dict[str, Any]:
    """The parameters of `APPEND_STATEMENT` for one event."""
    update = update_for(envelope)
    return {
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
        "run_id": run_id,
        "budget": limit_for(budget, envelope.type),
    }


async def settle(
    conn: psycopg.AsyncConnection[Any],
    envelope: EventEnvelope,
    run_id: str | None,
    budget: EventBudget | None,
) -> AppendResult | None:
    """Why the fast statement took nothing: a duplicate, a closed chapter, an old run, or
    a new one; None when nothing stops it any more. Runs under the task row's lock, so
    the answer holds until commit."""
    cursor = await conn.execute(_EXISTING, (envelope.id,))
    existing = await cursor.fetchone()
    if existing is not None:
        return AppendResult(int(existing[0]), str(existing[1]), True, None)
    cursor = await conn.execute(_TASK_LOCKED, (envelope.subject,))
    task = await cursor.fetchone()
    if task is None:
        if await is_pruned(conn, envelope.subject):  # since the fast statement
            raise TaskPrunedError(f"task {envelope.subject} was pruned")
        raise DuplicateEventConflictError(f"event {envelope.id} vanished during dedupe")
    status, current_run, runs = str(task[0]), task[1], list(task[2] or [])
    if run_id is not None and current_run is not None and run_id != current_run:
        if run_id in runs:
            raise ChapterClosedError(
                f"task {envelope.subject}: run {run_id} was left behind by a reset"
            )
        raise NewRunError(envelope.subject, current_run, run_id)
    closed = status in {terminal.value for terminal in TERMINAL_STATUSES}
    if envelope.type == "task.created.v1" and not closed:
        raise AlreadyCreatedError(f"task {envelope.subject} exists")
    if not closed and (run_id is None or current_run in (None, run_id)):
        if budget is not None:
            budget.check(envelope.subject, int(task[3]), envelope.type)
        return None  # the fast statement would take it now: try again
    if run_id is not None and current_run is None and closed:
        # Recorded before chapters existed, and closed: a new run here is a reset.
        raise NewRunError(envelope.subject, None, run_id)
    raise ChapterClosedError(f"task {envelope.subject} is {status}: its chapter has ended")
