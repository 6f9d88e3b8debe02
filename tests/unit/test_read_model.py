from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from schemas import EventEnvelope
from schemas.tasks import TaskStatus
from store.read_model import update_for


def envelope(event_type: str, data: dict[str, Any]) -> EventEnvelope:
    return EventEnvelope(id="e", type=event_type, subject="t", time=datetime.now(UTC), data=data)


def test_created_sets_type_input_and_running() -> None:
    update = update_for(
        envelope("task.created.v1", {"task_type": "demo.pipeline", "input": {"steps": 2}})
    )
    assert update.task_type == "demo.pipeline"
    assert update.status is TaskStatus.RUNNING
    assert update.input == {"steps": 2}


def test_progress_spans_all_steps() -> None:
    started = update_for(
        envelope("task.step.started.v1", {"index": 2, "name": "s", "attempt": 1, "total_steps": 4})
    )
    halfway = update_for(
        envelope(
            "task.step.progress.v1", {"index": 2, "name": "s", "percent": 50, "total_steps": 4}
        )
    )
    done = update_for(
        envelope(
            "task.step.completed.v1",
            {"index": 4, "name": "s", "duration_seconds": 1, "total_steps": 4},
        )
    )
    assert started.progress == 25.0
    assert halfway.progress == 37.5
    assert done.progress == 100.0


def test_progress_unknown_without_total_steps() -> None:
    assert (
        update_for(
            envelope("task.step.progress.v1", {"index": 1, "name": "s", "percent": 10})
        ).progress
        is None
    )


def test_terminal_events_set_status_result_and_error() -> None:
    completed = update_for(envelope("task.completed.v1", {"result": {"ok": True}}))
    failed = update_for(envelope("task.failed.v1", {"error": "boom", "step": 2}))
    cancelled = update_for(envelope("task.cancelled.v1", {"reason": "asked"}))
    assert (completed.status, completed.result, completed.progress) == (
        TaskStatus.COMPLETED,
        {"ok": True},
        100.0,
    )
    assert (failed.status, failed.error) == (TaskStatus.FAILED, "boom")
    assert (cancelled.status, cancelled.error) == (TaskStatus.CANCELLED, "asked")


def test_pause_and_resume_move_status() -> None:
    assert update_for(envelope("task.paused.v1", {})).status is TaskStatus.PAUSED
    assert update_for(envelope("task.resumed.v1", {})).status is TaskStatus.RUNNING
