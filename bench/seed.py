"""Events written straight to the store for the parts that read them back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from bench.context import BenchContext
from bench.recorders import BatchAppender, build_envelope, mark_published
from schemas import EventEnvelope

CHUNK = 1000


def _task_events(task_id: str, count: int, *, terminal: bool) -> Iterator[EventEnvelope]:
    """`task.created`, progress ticks of one step, and `task.completed` when `terminal`."""
    yield build_envelope(
        str(uuid.uuid4()),
        task_id,
        "task.created.v1",
        {"task_type": "demo.pipeline", "input": {"steps": 1, "progress_ticks": count}},
    )
    ticks = count - 2 if terminal else count - 1
    for tick in range(1, ticks + 1):
        yield build_envelope(
            str(uuid.uuid4()),
            task_id,
            "task.step.progress.v1",
            {
                "index": 1,
                "name": "step-1",
                "percent": round(tick * 100 / max(ticks, 1), 3),
                "message": f"tick {tick}/{ticks}",
                "total_steps": 1,
            },
        )
    if terminal:
        yield build_envelope(
            str(uuid.uuid4()), task_id, "task.completed.v1", {"result": {"ticks": ticks}}
        )


async def seed_tasks(
    ctx: BenchContext, tasks: int, events_per_task: int, *, terminal: bool
) -> list[str]:
    """Store `tasks` tasks of `events_per_task` events each, in one-transaction chunks.

        Through `EventStore.append` (one transaction per chunk); the outbox rows
    are marked published: nobody is to relay these.
    """
    appender = BatchAppender(ctx.pool)
    task_ids = [str(uuid.uuid4()) for _ in range(tasks)]
    chunk: list[EventEnvelope] = []
    outbox_ids: list[int] = []

    async def flush() -> None:
        appended = await appender.append_many(chunk)
        outbox_ids.extend(a.outbox_id for a in appended if a.outbox_id is not None)
        chunk.clear()

    for task_id in task_ids:
        for envelope in _task_events(task_id, events_per_task, terminal=terminal):
            chunk.append(envelope)
            if len(chunk) >= CHUNK:
                await flush()
    if chunk:
        await flush()
    await mark_published(ctx.pool, outbox_ids)
    return task_ids
