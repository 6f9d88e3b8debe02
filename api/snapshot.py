"""The task's current state in one object: `GET /tasks/{id}` returns it, and an SSE
stream sends it as its first frame (`event: snapshot`, docs/events.md), so a client
that arrives late renders at once and then follows the events.

The snapshot is as of `last_sequence`: every event up to it is reflected, none after.
It has no `id:` line on the stream and takes no `sequence`, so `Last-Event-ID` resumes
exactly as before; `?snapshot=false` leaves the frame out.

Adding to it: give `TaskSnapshot` a field with a default (an older client ignores it)
and fill it in `build_snapshot`, as `waiting_inputs` is (store/inputs.py).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from api.lookup import find_task, parse_task_id, view_from_record
from api.models import TaskView
from api.problems import ProblemError
from api.services import Services
from schemas.tasks import TaskStatus
from store.inputs import TaskInputs
from store.live_state import LiveStateReader
from store.tenants import TaskOwners

SNAPSHOT_EVENT = "snapshot"


class OutputState(BaseModel):
    length: int = Field(
        description="Characters (text) plus items (JSON) in the stream so far, leaving out"
        " the output of attempts that failed."
    )


class TaskSnapshot(TaskView):
    """`TaskView` plus what task code wrote: live metadata and output streams."""

    metadata: dict[str, Any] = Field(
        default_factory=dict, description="The task's live metadata (`set_metadata`)."
    )
    outputs: dict[str, OutputState] = Field(
        default_factory=dict, description="Each output stream's length (`emit_output`)."
    )
    waiting_inputs: list[dict[str, Any]] = Field(
        default_factory=list,
        description="The inputs the task waits for (status `waiting`): each `name`,"
        " `input_schema`, `deadline`, `prompt` and the `sequence` of its"
        " `task.input.requested.v1` (`POST /tasks/{id}/inputs/{name}` delivers one).",
    )
    last_sequence: int = Field(
        default=0, description="The state is as of this event's `sequence` (0: none yet)."
    )


async def build_snapshot(services: Services, task_id: str, tenant: str) -> TaskSnapshot:
    """The task's snapshot; 404 (problem) as `find_task` when the tenant cannot see it."""
    task_id = parse_task_id(task_id)
    if await TaskOwners(services.pool).owner_of(task_id) != tenant:
        raise ProblemError(404, f"no task {task_id}")
    return await current_snapshot(services, task_id, tenant)


async def current_snapshot(services: Services, task_id: str, tenant: str) -> TaskSnapshot:
    """`build_snapshot` for a caller that has checked the tenant already (`find_task`):
    one read of the store."""
    live = await LiveStateReader(services.pool).get(task_id)
    if live is None:  # pending (only Temporal knows it) or pruned: find_task says which
        view = await find_task(services, task_id, tenant)
        return TaskSnapshot(**view.model_dump())
    view = view_from_record(live.record)
    waiting: list[dict[str, Any]] = []
    if view.status is TaskStatus.WAITING:  # one more (indexed) read only then
        inputs = TaskInputs(services.pool)
        as_of = live.record.last_seq
        waiting = [w.as_json() for w in await inputs.waiting_inputs(task_id, as_of=as_of)]
    return TaskSnapshot(
        **view.model_dump(),
        metadata=live.metadata,
        outputs={name: OutputState(length=n) for name, n in live.output_lengths.items()},
        waiting_inputs=waiting,
        last_sequence=live.record.last_seq,
    )


def snapshot_bytes(snapshot: TaskSnapshot) -> bytes:
    """The stream's first frame: no `id`, so it moves no client's `Last-Event-ID`."""
    return f"event: {SNAPSHOT_EVENT}\ndata: {snapshot.model_dump_json()}\n\n".encode()
