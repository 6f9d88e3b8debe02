"""Parked tasks: queued before their workflow runs (docs/flow-control.md#parked-tasks).

`POST /tasks` of a type with a limit (strategy `queue`) asks `park` first: when the
key is full (every slot held, or someone already waits), the task's ticket joins the
key's line in the same tables and under the same key lock as a workflow's claim, so
priority, the tenants' round robin and arrival order stay one logic, and the ticket
keeps what starting the workflow needs (`ParkedStart`). The task's `tasks` row is
written in the same transaction, one function call (migration 0023: one round trip where
six statements took eight; status `queued`, no event yet): it reads and lists
as queued until its workflow records `task.created.v1`. Whoever admits a parked
ticket wakes its workflow with Signal-With-Start (activities/admission.py `Waker`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from schemas.admission import AdmissionRequest
from store.autocommit import autocommit

# Migration 0023: the key's row locked, the id checked new, the line read (its counters),
# the ticket and the task's row written, in one round trip.
_PARK = """
SELECT taskplane_park(%(task_id)s, %(task_type)s, %(key)s, %(tenant)s, %(priority)s::smallint,
                      %(limit)s, %(parked)s, %(input)s)
"""
_PARKED = (
    "SELECT task_id, parked FROM admission_tickets WHERE task_id = ANY(%s) AND parked IS NOT NULL"
)


@dataclass
class ParkedStart:
    """What starting a parked task's workflow takes, stored with its ticket: the
    workflow's input (`TaskWorkflowInput` as JSON) and the request's memo."""

    input: dict[str, Any]
    request_hash: str
    request_nonce: str


async def park(
    pool: AsyncConnectionPool, request: AdmissionRequest, start: ParkedStart
) -> int | None:
    """Queue the task before its workflow runs if its key is full: its position (1: next),
    also stored as the input's `parked_position`. None: a slot is free (or the
    task has a ticket already, a repeat): start it as usual, its claim decides."""
    params = {
        "task_id": request.task_id,
        "task_type": request.task_type,
        "key": request.concurrency_key,
        "tenant": request.tenant,
        "priority": request.priority,
        "limit": request.limit,
        "parked": Jsonb(asdict(start)),
        "input": Jsonb(start.input.get("input")),
    }
    async with pool.connection() as conn, autocommit(conn):
        row = await (await conn.execute(_PARK, params)).fetchone()
    position = None if row is None or row[0] is None else int(row[0])
    if position is not None:
        start.input["parked_position"] = position
    return position


async def parked_starts(
    pool: AsyncConnectionPool, task_ids: Sequence[str]
) -> dict[str, ParkedStart]:
    """The stored starts of those of `task_ids` that were parked."""
    if not task_ids:
        return {}
    async with pool.connection() as conn:
        rows = await (await conn.execute(_PARKED, (list(task_ids),))).fetchall()
    return {str(task_id): ParkedStart(**parked) for task_id, parked in rows}
