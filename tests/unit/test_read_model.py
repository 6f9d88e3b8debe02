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


def test_step_events_carry_fraction_and_total() -> None:
    step = {"index": 2, "name": "s", "total_steps": 4}
    started = update_for(envelope("task.step.started.v1", {**step, "attempt": 1}))
    halfway = update_for(envelope("task.step.progress.v1", {**step, "percent": 50}))
    done = update_for(envelope("task.step.completed.v1", {**step, "duration_seconds": 1}))
    assert (started.step_fraction, started.total_steps, started.completes_step) == (0.0, 4, False)
    assert (halfway.step_fraction, halfway.completes_step) == (0.5, False)
    assert (done.step_fraction, done.completes_step) == (1.0, True)


def test_progress_unknown_without_total_steps() -> None:
    update = update_for(envelope("task.step.progress.v1", {"index": 1, "name": "s", "percent": 10}))
    assert update.total_steps is None
    assert update.progress is None


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


def test_a_stored_v1_terminated_event_is_read_through_its_upcaster() -> None:
    data = {"close_status": "TIMED_OUT", "run_id": "r", "reason": None, "identity": None}
    v1 = update_for(envelope("task.terminated.v1", data))
    v2 = update_for(envelope("task.terminated.v2", {**data, "timed_out": True}))
    assert v1 == v2
    assert (v1.status, v1.error) == (TaskStatus.TERMINATED, "closed by Temporal as TIMED_OUT")


def test_waiting_for_an_input_and_receiving_it_move_the_status() -> None:
    requested = update_for(
        envelope("task.input.requested.v1", {"name": "approve", "input_schema": {}})
    )
    received = update_for(envelope("task.input.received.v1", {"name": "approve", "value": {}}))
    timed_out = update_for(envelope("task.input.received.v1", {"name": "a", "timed_out": True}))
    assert requested.status is TaskStatus.WAITING
    assert received.status is TaskStatus.RUNNING
    assert timed_out.status is TaskStatus.RUNNING
    assert not TaskStatus.WAITING.terminal
