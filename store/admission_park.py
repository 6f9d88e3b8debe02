"""Parked tasks: queued before their workflow runs (docs/flow-control.md#parked-tasks).

`POST /tasks` of a type with a limit (strategy `queue`) asks `park` first: when the
key is full (every slot held, or someone already waits), the task's ticket joins the
key's line in the same tables and under the same key lock as a workflow's claim, so
priority, the tenants' round robin and arrival order stay one logic, and the ticket
keeps what starting the workflow needs (`ParkedStart`). The task's `tasks` row is
written in the same transaction (status `queued`, no event yet): it reads and lists
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
from store.admission import CLAIM_KEY  # the key's row, created or locked as a claim does

# A repeat (an Idempotency-Key's): the task has a ticket or a row already.
_KNOWN = """
SELECT 1 FROM admission_tickets WHERE task_id = %(id)s
UNION ALL SELECT 1 FROM tasks WHERE task_id = %(id)s
"""
# The key's line: how many wait, and how many of them go before this task (priority,
# then arrival: it is the newest, so every waiting ticket of its priority or better).
_LINE = """
SELECT count(*), count(*) FILTER (WHERE priority <= %(priority)s) FROM admission_tickets
WHERE task_type = %(task_type)s AND concurrency_key = %(key)s AND state = 'queued'
"""
_PARK = """
INSERT INTO admission_tickets
    (task_id, task_type, concurrency_key, tenant, priority, state, parked)
VALUES (%(task_id)s, %(task_type)s, %(key)s, %(tenant)s, %(priority)s, 'queued', %(parked)s)
"""
_TASK_ROW = """
INSERT INTO tasks (task_id, task_type, status, input, owner)
VALUES (%(task_id)s, %(task_type)s, 'queued', %(input)s, %(tenant)s)
ON CONFLICT (task_id) DO NOTHING
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
    key = {"task_type": request.task_type, "key": request.concurrency_key}
    async with pool.connection() as conn, conn.transaction():
        cursor = await conn.execute(CLAIM_KEY, {**key, "limit": request.limit})
        row = await cursor.fetchone()
        if row is None or await (await conn.execute(_KNOWN, {"id": request.task_id})).fetchone():
            return None
        running, limit = int(row[0]), int(row[1])
        line = await (await conn.execute(_LINE, {**key, "priority": request.priority})).fetchone()
        waiting, ahead = (int(line[0]), int(line[1])) if line else (0, 0)
        if running < limit and waiting == 0:
            return None
        position = ahead + 1
        start.input["parked_position"] = position
        await conn.execute(
            _PARK,
            {
                **key,
                "task_id": request.task_id,
                "tenant": request.tenant,
                "priority": request.priority,
                "parked": Jsonb(asdict(start)),
            },
        )
        await conn.execute(
            _TASK_ROW,
            {
                "task_id": request.task_id,
                "task_type": request.task_type,
                "input": Jsonb(start.input.get("input")),
                "tenant": request.tenant,
            },
        )
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
