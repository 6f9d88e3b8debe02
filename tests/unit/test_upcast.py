"""Upcasting: events stored at an older version of their type read back at the latest."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from temporalio.client import WorkflowExecutionStatus

from schemas import EVENT_MODELS, EventEnvelope, InvalidEventDataError, decode_event, read_data
from schemas.contract import index
from schemas.envelope import schema_id
from schemas.examples import example_envelope
from schemas.upcast import (
    UPCASTERS,
    Upcaster,
    _check,
    latest_type,
    needs_upcast,
    upcast,
    upcast_json,
)
from tools.schema_export import SCHEMA_DIR
from worker.run_endings import ClosedRun, ending_event


def stored(event_type: str, **data: object) -> EventEnvelope:
    body = example_envelope(event_type)
    body["data"] = {**body["data"], **data}
    body["partitionkey"] = "tenant-a"  # an extension attribute, carried through
    return decode_event(json.dumps(body))


@pytest.mark.parametrize("source", sorted(UPCASTERS))
def test_every_adapter_turns_its_example_into_a_valid_newer_event(source: str) -> None:
    newer = upcast(stored(source))
    assert newer.type == latest_type(source) != source
    read_data(newer.type, newer.data)
    schema = json.loads((SCHEMA_DIR / f"{newer.type}.json").read_text("utf-8"))
    jsonschema.Draft202012Validator(schema).validate(json.loads(newer.to_json()))


@pytest.mark.parametrize(
    ("close_status", "timed_out"), [("TERMINATED", False), ("TIMED_OUT", True)]
)
def test_terminated_v1_reads_back_as_v2(close_status: str, timed_out: bool) -> None:
    v1 = stored("task.terminated.v1", close_status=close_status)
    v2 = upcast(v1)
    assert v2.type == "task.terminated.v2"
    assert v2.data == {**v1.data, "timed_out": timed_out}
    assert (v1.dataschema, v2.dataschema) == (
        schema_id("task.terminated.v1"),
        schema_id("task.terminated.v2"),
    )
    # The event is the same event: only its type and data moved on.
    assert (v2.id, v2.subject, v2.time, v2.sequence, v2.model_extra) == (
        v1.id,
        v1.subject,
        v1.time,
        v1.sequence,
        {"partitionkey": "tenant-a"},
    )


def test_latest_events_pass_through_untouched() -> None:
    for event_type in EVENT_MODELS:
        if needs_upcast(event_type):
            continue
        event = stored(event_type)
        assert upcast(event) is event
        text = event.to_json()
        assert upcast_json(text, event_type) is text  # not even parsed


def test_upcast_json_serves_the_latest_version() -> None:
    v1 = stored("task.terminated.v1")
    text = upcast_json(v1.to_json(), "task.terminated.v1")
    assert decode_event(text) == upcast(v1)


def test_an_adapter_cannot_produce_an_invalid_event() -> None:
    broken = stored("task.terminated.v1")
    without_status = broken.model_copy(
        update={"data": {k: v for k, v in broken.data.items() if k != "close_status"}}
    )
    # (No v1 event lacks close_status: decode_event refuses it; this one was forged.)
    original = UPCASTERS["task.terminated.v1"]
    UPCASTERS["task.terminated.v1"] = Upcaster(original.source, original.target, lambda d: d)
    try:
        with pytest.raises(InvalidEventDataError):
            upcast(broken)  # no `timed_out`: not a valid v2
    finally:
        UPCASTERS["task.terminated.v1"] = original
    with pytest.raises(InvalidEventDataError):
        upcast(without_status)


def test_the_registry_refuses_adapters_that_skip_or_leave_their_family() -> None:
    def same(data: dict[str, object]) -> dict[str, object]:
        return data

    with pytest.raises(ValueError, match="not vN"):
        _check({"task.paused.v1": Upcaster("task.paused.v1", "task.terminated.v2", same)})
    with pytest.raises(ValueError, match="not registered"):
        _check({"task.paused.v1": Upcaster("task.paused.v1", "task.paused.v2", same)})


def test_the_index_names_each_older_version_s_successor() -> None:
    events = index()["events"]
    assert events["task.terminated.v1"]["supersededBy"] == "task.terminated.v2"
    assert "supersededBy" not in events["task.terminated.v2"]


@pytest.mark.parametrize(
    ("status", "close_status"),
    [
        (WorkflowExecutionStatus.TERMINATED, "TERMINATED"),
        (WorkflowExecutionStatus.TIMED_OUT, "TIMED_OUT"),
    ],
)
def test_the_reconciler_records_the_version_docs_events_md_says_readers_get_upcast(
    status: WorkflowExecutionStatus, close_status: str
) -> None:
    """Producers record vN while vN+1 is a read version (docs/events.md, Which version is
    recorded): moving the reconciler to v2 is a breaking change for webhooks and
    `?version=stored` readers, to be made on purpose, with this test and the guide."""
    run = ClosedRun(task_id="t", run_id="r", status=status)
    event_type, data = ending_event(run, close_status, "why", "who")
    assert event_type == "task.terminated.v1"
    assert needs_upcast(event_type)
    assert latest_type(event_type) == "task.terminated.v2"
    read = upcast(stored(event_type, **data))
    assert read.type == "task.terminated.v2"
    assert read.data["timed_out"] is (status is WorkflowExecutionStatus.TIMED_OUT)
    guide = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text("utf-8")
    assert f"the reconciler (`worker/run_endings.py`) records\n  `{event_type}`" in guide
