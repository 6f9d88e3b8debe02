from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from pydantic import ValidationError

from schemas import (
    EVENT_MODELS,
    TERMINAL_EVENT_TYPES,
    EventEnvelope,
    InvalidEventError,
    format_time,
    validate_data,
)
from schemas.tasks import DemoPipelineInput

CATALOGUE = {
    "task.created.v1",
    "task.step.started.v1",
    "task.step.progress.v1",
    "task.step.completed.v1",
    "task.step.failed.v1",
    "task.paused.v1",
    "task.resumed.v1",
    "task.completed.v1",
    "task.failed.v1",
    "task.cancelled.v1",
    "task.terminated.v1",
    "task.terminated.v2",
    "task.reset.v1",
    "task.progress.v1",
    "task.metadata.updated.v1",
    "task.output.v1",
    "task.input.requested.v1",
    "task.input.received.v1",
    "task.queued.v1",
    "task.admitted.v1",
    "task.deferred.v1",
}


def test_registry_holds_exactly_the_catalogue() -> None:
    assert set(EVENT_MODELS) == CATALOGUE
    assert {
        "task.completed.v1",
        "task.failed.v1",
        "task.cancelled.v1",
        "task.terminated.v1",
        "task.terminated.v2",
    } == TERMINAL_EVENT_TYPES


def test_envelope_serialises_as_cloudevents_with_integer_sequence() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    envelope = EventEnvelope(
        id="e1", type="task.resumed.v1", subject="t1", time=when, data={}
    ).with_sequence(7)
    decoded = orjson.loads(envelope.to_json())
    assert decoded == {
        "specversion": "1.0",
        "id": "e1",
        "source": "/taskplane",
        "type": "task.resumed.v1",
        "subject": "t1",
        "time": "2026-01-02T03:04:05.678901Z",
        "datacontenttype": "application/json",
        "data": {},
        "sequence": 7,
    }
    assert EventEnvelope.model_validate_json(envelope.to_json()) == envelope


def test_time_is_always_utc_with_microseconds() -> None:
    from zoneinfo import ZoneInfo

    local = datetime(2026, 6, 1, 12, 0, 0, 5, tzinfo=ZoneInfo("Europe/Paris"))
    assert format_time(local) == "2026-06-01T10:00:00.000005Z"


def test_envelope_refuses_a_non_positive_sequence_and_wrong_specversion() -> None:
    base = {
        "id": "x",
        "type": "task.created.v1",
        "subject": "t",
        "time": datetime.now(UTC),
        "data": {},
    }
    with pytest.raises(ValidationError):
        EventEnvelope.model_validate({**base, "sequence": 0})
    with pytest.raises(ValidationError):
        EventEnvelope.model_validate({**base, "specversion": "0.3"})


def test_validate_data_rejects_unknown_types_and_bad_fields() -> None:
    with pytest.raises(InvalidEventError, match="unknown event type"):
        validate_data("task.exploded.v1", {})
    with pytest.raises(InvalidEventError):
        validate_data("task.step.progress.v1", {"index": 1, "name": "s", "percent": 140})
    with pytest.raises(InvalidEventError):
        validate_data("task.step.started.v1", {"index": 1, "name": "s", "attempt": 1, "extra": 1})
    ok = validate_data(
        "task.step.failed.v1",
        {"index": 2, "name": "s", "error": "e", "attempt": 1, "will_retry": True},
    )
    assert ok.model_dump()["will_retry"] is True


def test_demo_pipeline_input_defaults_and_bounds() -> None:
    assert DemoPipelineInput().model_dump() == {
        "steps": 3,
        "step_seconds": 0.5,
        "fail_at_step": None,
        "progress_ticks": 0,
        "hang_at_step": None,
        "hang_attempts": 1,
        "step_timeout_seconds": None,
        "flaky_at_step": None,
        "flaky_attempts": 1,
        "start_delay_seconds": 0,
    }
    for bad in (
        {"steps": 0},
        {"step_seconds": -1},
        {"fail_at_step": 0},
        {"progress_ticks": -1},
        {"nope": 1},
    ):
        with pytest.raises(ValidationError):
            DemoPipelineInput.model_validate(bad)
