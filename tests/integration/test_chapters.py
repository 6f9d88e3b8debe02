"""Chapters on a real Postgres: what the recorder does with events of other runs.

A Temporal reset starts a new run of the same task. Its first event begins a
chapter (`task.reset.v1`, status running, progress from 0), its own
`task.created.v1` is superseded, events of the run it left behind and events
after a chapter's terminal event are refused, and nothing is written twice.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import pytest
from psycopg_pool import AsyncConnectionPool

from activities.recorder import EventRecorder
from store import EventStore, TaskReader
from store.events import ChapterClosedError
from tests.invariants import Event, find_violations, load_history


def _new_ids() -> tuple[str, str, str]:
    return str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())


async def _record(
    recorder: EventRecorder, task_id: str, run_id: str | None, event_type: str, **data: Any
) -> int:
    result = await recorder.record(
        event_id=str(uuid.uuid4()),
        task_id=task_id,
        event_type=event_type,
        data=data,
        run_id=run_id,
    )
    return result.sequence


async def _step_completed(recorder: EventRecorder, task_id: str, run_id: str, index: int) -> None:
    await _record(
        recorder,
        task_id,
        run_id,
        "task.step.completed.v1",
        index=index,
        name=f"step-{index}",
        output={},
        duration_seconds=0.1,
        total_steps=2,
    )


async def _types(pool: AsyncConnectionPool, task_id: str) -> list[str]:
    return [e.type for e in sorted(await load_history(pool, [task_id]), key=lambda e: e.sequence)]


async def _status(pool: AsyncConnectionPool, task_id: str) -> tuple[str, float]:
    record = await TaskReader(pool).get(task_id)
    assert record is not None
    return str(record.status), float(record.progress)


async def _finished_task(recorder: EventRecorder, task_id: str, run_id: str) -> None:
    await _record(recorder, task_id, run_id, "task.created.v1", task_type="demo.pipeline", input={})
    await _step_completed(recorder, task_id, run_id, 1)
    await _step_completed(recorder, task_id, run_id, 2)
    await _record(recorder, task_id, run_id, "task.completed.v1", result={"steps": 2})


async def test_a_new_run_begins_a_chapter_that_ends_with_its_own_terminal_event(
    recorder: EventRecorder, pool: AsyncConnectionPool
) -> None:
    task_id, first_run, second_run = _new_ids()
    await _finished_task(recorder, task_id, first_run)
    assert await _status(pool, task_id) == ("completed", 100.0)

    # The reset run starts over: its task.created.v1 becomes the chapter's task.reset.v1.
    superseded = await recorder.record(
        event_id=str(uuid.uuid4()),
        task_id=task_id,
        event_type="task.created.v1",
        data={"task_type": "demo.pipeline", "input": {}},
        run_id=second_run,
    )
    assert superseded.superseded
    assert superseded.duplicate
    assert await _status(pool, task_id) == ("running", 0.0)
    await _step_completed(recorder, task_id, second_run, 1)
    assert await _status(pool, task_id) == ("running", 50.0)
    await _record(recorder, task_id, second_run, "task.failed.v1", error="boom", step=2)

    types = await _types(pool, task_id)
    assert types == [
        "task.created.v1",
        "task.step.completed.v1",
        "task.step.completed.v1",
        "task.completed.v1",
        "task.reset.v1",
        "task.step.completed.v1",
        "task.failed.v1",
    ]
    stored = await EventStore(pool).history(task_id)
    reset = orjson.loads(next(e for e in stored if e.event_type == "task.reset.v1").envelope_json)
    assert reset["data"]["from_run_id"] == first_run
    assert reset["data"]["to_run_id"] == second_run
    assert reset["sequence"] == 5
    assert find_violations(await load_history(pool, [task_id]), []) == []
    assert await _status(pool, task_id) == ("failed", 50.0)


async def test_nothing_is_recorded_after_a_chapters_terminal_event(
    recorder: EventRecorder, pool: AsyncConnectionPool
) -> None:
    task_id, run_id, _ = _new_ids()
    await _finished_task(recorder, task_id, run_id)
    with pytest.raises(ChapterClosedError):
        await _step_completed(recorder, task_id, run_id, 2)
    with pytest.raises(ChapterClosedError):
        await _record(recorder, task_id, run_id, "task.failed.v1", error="late", step=None)
    assert (await _types(pool, task_id))[-1] == "task.completed.v1"
    assert len(await _types(pool, task_id)) == 4


async def test_events_of_a_run_left_behind_by_a_reset_are_refused(
    recorder: EventRecorder, pool: AsyncConnectionPool
) -> None:
    task_id, old_run, new_run = _new_ids()
    await _record(
        recorder, task_id, old_run, "task.created.v1", task_type="demo.pipeline", input={}
    )
    await _step_completed(recorder, task_id, new_run, 1)  # the reset run's first event
    with pytest.raises(ChapterClosedError):
        await _step_completed(recorder, task_id, old_run, 2)  # the old run's step, late
    assert await _types(pool, task_id) == [
        "task.created.v1",
        "task.reset.v1",
        "task.step.completed.v1",
    ]


async def test_concurrent_first_events_of_a_new_run_record_one_reset(
    recorder: EventRecorder, pool: AsyncConnectionPool
) -> None:
    task_id, old_run, new_run = _new_ids()
    await _finished_task(recorder, task_id, old_run)
    # Parallel steps of the reset run, each the "first" event the store sees of it.
    await asyncio.gather(*(_step_completed(recorder, task_id, new_run, i) for i in (1, 2)))
    types = await _types(pool, task_id)
    assert types.count("task.reset.v1") == 1
    assert types[4] == "task.reset.v1"
    assert sorted(types[5:]) == ["task.step.completed.v1", "task.step.completed.v1"]
    history: list[Event] = await load_history(pool, [task_id])
    assert find_violations(history, [], require_terminal=False) == []
