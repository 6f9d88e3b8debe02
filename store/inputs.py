"""What a task waits for, and the one-time input links (migration 0011).

The inputs a task waits for are not a table of their own: they are what its
`task.input.requested.v1` events ask for that no later `task.input.received.v1`
answered, in its current chapter, while it is open — read through a partial index
over those few events (in the one partition of `events` that holds the task's),
so the answer is as true as the event store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from schemas.tasks import TERMINAL_STATUSES
from store.pool import read_twice

_CLOSED = ", ".join(f"'{status.value}'" for status in sorted(TERMINAL_STATUSES))

# `{open}`: only while the task is open (what it waits for), or whatever its status.
_INPUT_EVENTS = """
SELECT e.seq, e.event_type, e.envelope FROM events e
WHERE e.task_id = %(task_id)s
  AND e.task_created_at = (SELECT created_at FROM tasks WHERE task_id = %(task_id)s {open})
  AND e.event_type IN ('task.input.requested.v1', 'task.input.received.v1', 'task.reset.v1')
ORDER BY e.seq
"""
_OPEN_INPUT_EVENTS = _INPUT_EVENTS.replace("{open}", f"AND status NOT IN ({_CLOSED})")
_ANY_INPUT_EVENTS = _INPUT_EVENTS.replace("{open}", "")


@dataclass(frozen=True, slots=True)
class WaitingInput:
    """An input the task waits for now (from its `task.input.requested.v1`)."""

    name: str
    input_schema: dict[str, Any]
    deadline: str | None
    prompt: str | None
    sequence: int  # of the request

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_schema": self.input_schema,
            "deadline": self.deadline,
            "prompt": self.prompt,
            "sequence": self.sequence,
        }


@dataclass(frozen=True, slots=True)
class ReceivedInput:
    """A delivered input (from its `task.input.received.v1`)."""

    name: str
    value: dict[str, Any] | None
    delivery_id: str | None
    sequence: int


class TaskInputs:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def _events(
        self, task_id: str, *, open_only: bool = True
    ) -> list[tuple[int, str, dict[str, Any]]]:
        query = _OPEN_INPUT_EVENTS if open_only else _ANY_INPUT_EVENTS
        async with self._pool.connection() as conn:
            cursor = await conn.execute(query, {"task_id": task_id})
            rows = await cursor.fetchall()
        return [(int(seq), str(kind), json.loads(text)["data"]) for seq, kind, text in rows]

    async def waiting_inputs(self, task_id: str, *, as_of: int | None = None) -> list[WaitingInput]:
        """The inputs the task waits for now, oldest request first; none once it ended.
        `as_of`: as the events up to that sequence say (a snapshot's `last_sequence`)."""
        events = await read_twice(lambda: self._events(task_id))
        waiting: dict[str, WaitingInput] = {}
        for seq, kind, data in events:
            if as_of is not None and seq > as_of:
                break
            if kind == "task.reset.v1":
                waiting.clear()
            elif kind == "task.input.requested.v1":
                waiting[data["name"]] = WaitingInput(
                    name=data["name"],
                    input_schema=data.get("input_schema") or {},
                    deadline=data.get("deadline"),
                    prompt=data.get("prompt"),
                    sequence=seq,
                )
            else:
                waiting.pop(data["name"], None)
        return list(waiting.values())

    async def received(self, task_id: str, name: str) -> list[ReceivedInput]:
        """Every delivery of input `name`, the task open or not (for idempotent repeats:
        a delivery id names the request that made it)."""
        events = await read_twice(lambda: self._events(task_id, open_only=False))
        return [
            ReceivedInput(data["name"], data.get("value"), data.get("delivery_id"), seq)
            for seq, kind, data in events
            if kind == "task.input.received.v1" and data.get("name") == name
        ]

    async def claim_link(
        self, link_id: str, *, task_id: str, name: str, expires_at: datetime
    ) -> bool:
        """Take the one use of an input link: False when it was used already."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "INSERT INTO input_link_uses (link_id, task_id, name, expires_at)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (link_id) DO NOTHING RETURNING 1",
                (link_id, task_id, name, expires_at),
            )
            return await cursor.fetchone() is not None

    async def release_link(self, link_id: str) -> None:
        """Give the use back: the delivery it was taken for did not happen."""
        async with self._pool.connection() as conn:
            await conn.execute("DELETE FROM input_link_uses WHERE link_id = %s", (link_id,))

    async def link_used(self, link_id: str) -> bool:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT 1 FROM input_link_uses WHERE link_id = %s", (link_id,)
            )
            return await cursor.fetchone() is not None
