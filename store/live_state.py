"""The task's live state in one read: its read-model row, the metadata task code set,
and the length of each output stream (migration 0010 keeps them, by trigger, with the
events that change them). One statement, so every part is as of the same `last_seq`.

`METADATA_TOO_LARGE_SQLSTATE` is what the trigger raises when a patch would grow the
metadata past its cap; the authoring API turns it into `MetadataTooLargeError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from store.pool import read_twice
from store.tasks import TaskRecord

METADATA_TOO_LARGE_SQLSTATE = "TP413"

_COLUMNS = (
    "task_id, task_type, status, progress, input, owner, result, error, last_seq,"
    " created_at, updated_at, workflow_task_failing_since"
)
# Output of a failed attempt is left out: it is not the task's (docs/task-types.md).
_LIVE = f"""
SELECT {_COLUMNS}, metadata,
       (SELECT COALESCE(jsonb_object_agg(stream, total), '{{}}'::jsonb)
        FROM (SELECT stream, sum(length)::bigint AS total FROM task_outputs
              WHERE task_id = %(id)s AND NOT discarded GROUP BY stream) AS streams
       ) AS outputs
FROM tasks WHERE task_id = %(id)s
"""


@dataclass(frozen=True, slots=True)
class LiveState:
    record: TaskRecord
    metadata: dict[str, Any] = field(default_factory=dict)
    # stream name -> characters (text) plus items (JSON) written by live writers
    output_lengths: dict[str, int] = field(default_factory=dict)


class LiveStateReader:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def get(self, task_id: str) -> LiveState | None:
        """The task's state, or None when the store has no such task (yet)."""
        return await read_twice(lambda: self._get(task_id))

    async def _get(self, task_id: str) -> LiveState | None:
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(_LIVE, {"id": task_id})
            row = await cur.fetchone()
        if row is None:
            return None
        metadata = row.pop("metadata") or {}
        outputs = {str(name): int(total) for name, total in (row.pop("outputs") or {}).items()}
        return LiveState(TaskRecord(**row), metadata, outputs)
