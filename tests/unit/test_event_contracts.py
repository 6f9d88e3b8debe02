"""The published event contract: CloudEvents exactness, JSON Schemas, compatibility, AsyncAPI."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cloudevents.core.formats.json import JSONFormat
from cloudevents.v1.conversion import to_json as legacy_to_json
from cloudevents.v1.http import from_json as legacy_from_json

from schemas import EVENT_MODELS, EventEnvelope, InvalidEventError, decode_event
from schemas.asyncapi import document
from schemas.contract import INDEX_FILE, dumps, event_schema, render
from schemas.examples import EXAMPLE_DATA, example_envelope
from tools.schema_compat import breaking_changes
from tools.schema_export import ASYNCAPI_FILE, SCHEMA_DIR, published_breaks

TYPES = sorted(EVENT_MODELS)


def envelope(event_type: str, when: datetime | None = None) -> EventEnvelope:
    return EventEnvelope(
        id="8a1d1f7e-2b1c-4a55-9a0e-0e4f1f2a3b4c",
        type=event_type,
        subject="0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
        time=when or datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        data=EVENT_MODELS[event_type]
        .model_validate(EXAMPLE_DATA[event_type])
        .model_dump(mode="json"),
    ).with_sequence(12)


def published(event_type: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMA_DIR / f"{event_type}.json").read_text("utf-8"))
    return loaded


# --- CloudEvents 1.0, checked by the official SDK ------------------------------------------


def test_every_registered_type_has_an_example_that_its_model_accepts() -> None:
    assert set(EXAMPLE_DATA) == set(EVENT_MODELS)
    for event_type, data in EXAMPLE_DATA.items():
        assert (
            EVENT_MODELS[event_type].model_validate(data, strict=True).model_dump(mode="json")
            == data
        )


@pytest.mark.parametrize(
    "when",
    [
        datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        # Whole seconds: the SDK then writes no fraction, which must still decode.
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    ],
    ids=["micros", "whole-seconds"],
)
@pytest.mark.parametrize("event_type", TYPES)
def test_sdk_structured_json_round_trip(event_type: str, when: datetime) -> None:
    ours = envelope(event_type, when)
    wire = ours.to_json()
    fmt = JSONFormat()
    event = fmt.read(None, wire)  # the SDK validates attributes as it builds the event

    attributes = event.get_attributes()
    assert attributes == {
        "specversion": "1.0",
        "id": ours.id,
        "source": "/taskplane",
        "type": event_type,
        "subject": ours.subject,
        "time": when,
        "datacontenttype": "application/json",
        "sequence": 12,
    }
    assert isinstance(attributes["sequence"], int)
    assert event.get_extension("sequence") == 12
    assert event.get_data() == ours.data

    back = decode_event(fmt.write(event))
    assert back == ours


@pytest.mark.parametrize("event_type", TYPES)
def test_legacy_sdk_api_round_trip(event_type: str) -> None:
    ours = envelope(event_type)
    event = legacy_from_json(ours.to_json())
    assert event["type"] == event_type
    assert event["sequence"] == 12
    assert event["time"] == "2026-01-02T03:04:05.678901Z"
    assert event.get_data() == ours.data
    assert decode_event(legacy_to_json(event)) == ours


def test_the_sdk_agrees_that_our_refusals_are_not_cloudevents() -> None:
    """Spot checks that decode and the SDK refuse the same envelope mistakes."""
    from cloudevents.core.exceptions import CloudEventValidationError

    good = json.loads(envelope("task.resumed.v1").to_json())
    for change in ({"specversion": "2.0"}, {"Bad_Name": "x"}, {"id": ""}):
        bad = json.dumps({**good, **change})
        with pytest.raises(InvalidEventError):
            decode_event(bad)
        with pytest.raises((CloudEventValidationError, ValueError)):
            JSONFormat().read(None, bad)


# --- JSON Schemas: generated, checked in, current, valid -----------------------------------


def test_checked_in_schemas_and_asyncapi_are_up_to_date() -> None:
    """Regenerated in memory and compared byte for byte; fix with `make schemas`."""
    expected = render()
    on_disk = {path.name: path.read_text("utf-8") for path in SCHEMA_DIR.glob("*.json")}
    assert sorted(on_disk) == sorted(expected), "run `make schemas`"
    for name, text in expected.items():
        assert on_disk[name] == text, f"schemas/json/{name} is stale: run `make schemas`"
    assert ASYNCAPI_FILE.read_text("utf-8") == dumps(document()), "run `make schemas`"


def test_generation_is_deterministic() -> None:
    assert render() == render()
    assert dumps(document()) == dumps(document())


def test_index_lists_every_type_and_its_file() -> None:
    index = json.loads((SCHEMA_DIR / INDEX_FILE).read_text("utf-8"))
    assert sorted(index["events"]) == TYPES
    assert index["maxEventBytes"] == 65536
    for event_type, entry in index["events"].items():
        assert (SCHEMA_DIR / entry["schema"]).is_file()
        assert entry["terminal"] is EVENT_MODELS[event_type].terminal


@pytest.mark.parametrize("event_type", TYPES)
def test_every_real_event_validates_against_its_published_schema(event_type: str) -> None:
    schema = published(event_type)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    validator.validate(json.loads(envelope(event_type).to_json()))
    validator.validate(example_envelope(event_type))
    for example in schema["examples"]:
        validator.validate(example)
        decode_event(json.dumps(example))
    other = next(name for name in TYPES if name != event_type)
    wrong_type = {**json.loads(envelope(event_type).to_json()), "type": other}
    assert not validator.is_valid(wrong_type)


GARBAGE: list[tuple[str, dict[str, Any]]] = [
    ("missing sequence", {"sequence": None}),
    ("missing source", {"source": None}),
    ("zero sequence", {"sequence": 0}),
    ("string sequence", {"sequence": "3"}),
    ("sequence over int32", {"sequence": 2**31}),
    ("time without offset", {"time": "2026-01-02T03:04:05"}),
    ("date only", {"time": "2026-01-02"}),
    ("old specversion", {"specversion": "0.3"}),
    ("other content type", {"datacontenttype": "text/plain"}),
    ("bad extension name", {"Trace_ID": "x"}),
    ("object extension", {"traceid": {"a": 1}}),
    ("data not an object", {"data": [1]}),
    ("retyped data field", {"data": {**EXAMPLE_DATA["task.step.progress.v1"], "index": "1"}}),
    ("missing data field", {"data": {"index": 1, "name": "s"}}),
    ("percent above 100", {"data": {**EXAMPLE_DATA["task.step.progress.v1"], "percent": 101}}),
]


@pytest.mark.parametrize(("why", "changes"), GARBAGE, ids=[why for why, _ in GARBAGE])
def test_python_decoder_and_published_schema_refuse_the_same_garbage(
    why: str, changes: dict[str, Any]
) -> None:
    """A consumer in another language, validating with the schema, agrees with ours."""
    body = json.loads(envelope("task.step.progress.v1").to_json())
    for key, value in changes.items():
        if value is None:
            body.pop(key)
        else:
            body[key] = value
    with pytest.raises(InvalidEventError):
        decode_event(json.dumps(body))
    validator = jsonschema.Draft202012Validator(published("task.step.progress.v1"))
    assert not validator.is_valid(body), why


ADDITIONS: list[tuple[str, dict[str, Any]]] = [
    ("unknown data field", {"data": {**EXAMPLE_DATA["task.step.progress.v1"], "eta": 1}}),
    ("unknown nested data", {"data": {**EXAMPLE_DATA["task.step.progress.v1"], "x": {"y": [1]}}}),
    ("unknown extension", {"partitionkey": "tenant-a"}),
    ("unknown integer extension", {"priority": 3}),
]


@pytest.mark.parametrize(("why", "changes"), ADDITIONS, ids=[why for why, _ in ADDITIONS])
def test_python_decoder_and_published_schema_both_accept_additions(
    why: str, changes: dict[str, Any]
) -> None:
    """Tolerant readers: what a newer producer may add, every reader accepts and ignores."""
    body = {**json.loads(envelope("task.step.progress.v1").to_json()), **changes}
    decode_event(json.dumps(body))
    validator = jsonschema.Draft202012Validator(published("task.step.progress.v1"))
    assert validator.is_valid(body), why


@pytest.mark.parametrize("event_type", TYPES)
def test_published_data_schemas_are_open_for_additions(event_type: str) -> None:
    data = published(event_type)["properties"]["data"]
    assert data.get("additionalProperties", True) is True, event_type


# --- compatibility with the published versions ---------------------------------------------


def test_current_models_do_not_break_any_published_schema() -> None:
    """The checked-in file is the contract: a change that breaks it needs a `…v2` type."""
    assert published_breaks() == {}


def _data_props(schema: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = schema["properties"]["data"]["properties"]
    return props


def test_checker_catches_a_removed_field() -> None:
    old = published("task.step.failed.v1")
    new = copy.deepcopy(old)
    del _data_props(new)["will_retry"]
    new["properties"]["data"]["required"].remove("will_retry")
    assert "$.data.will_retry: removed" in breaking_changes(old, new)


def test_checker_catches_a_retyped_field() -> None:
    old = published("task.step.progress.v1")
    new = copy.deepcopy(old)
    _data_props(new)["percent"] = {"type": "string"}
    assert breaking_changes(old, new) == ["$.data.percent: retyped from number to string"]
    nullable = copy.deepcopy(old)
    _data_props(nullable)["index"] = {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert "$.data.index: retyped from integer to integer | null" in breaking_changes(old, nullable)


def test_checker_catches_an_optional_field_made_required_and_a_new_required_field() -> None:
    old = published("task.step.progress.v1")
    new = copy.deepcopy(old)
    new["properties"]["data"]["required"].append("message")
    _data_props(new)["eta_seconds"] = {"type": "number"}
    new["properties"]["data"]["required"].append("eta_seconds")
    problems = breaking_changes(old, new)
    assert "$.data.message: optional field made required" in problems
    assert "$.data.eta_seconds: added as required (stored events lack it)" in problems


def test_checker_catches_narrowed_constraints_and_a_changed_type_name() -> None:
    old = published("task.step.progress.v1")
    new = copy.deepcopy(old)
    _data_props(new)["percent"]["maximum"] = 50
    new["properties"]["type"]["const"] = "task.step.progress.v2"
    problems = breaking_changes(old, new)
    assert "$.data.percent: maximum lowered to 50" in problems
    assert any(problem.startswith("$.type: const changed") for problem in problems)


def test_checker_allows_an_added_optional_field_and_new_descriptions() -> None:
    old = published("task.step.progress.v1")
    new = copy.deepcopy(old)
    _data_props(new)["eta_seconds"] = {
        "anyOf": [{"type": "number"}, {"type": "null"}],
        "default": None,
    }
    _data_props(new)["name"]["description"] = "Reworded."
    new["description"] = "Reworded too."
    assert breaking_changes(old, new) == []


def test_checker_allows_an_added_optional_field_with_any_type_in_open_data() -> None:
    """Open `data` admits anything under a new name; declaring it optional breaks nobody."""
    old = published("task.step.failed.v1")
    assert "additionalProperties" not in old["properties"]["data"]
    new = copy.deepcopy(old)
    _data_props(new)["exit_code"] = {"type": "integer", "minimum": 0}
    _data_props(new)["labels"] = {"type": "object", "additionalProperties": {"type": "string"}}
    assert breaking_changes(old, new) == []


def test_checker_allows_opening_closed_data_but_not_closing_open_data() -> None:
    opened = published("task.paused.v1")
    closed = copy.deepcopy(opened)
    closed["properties"]["data"]["additionalProperties"] = False
    assert breaking_changes(closed, opened) == []
    assert breaking_changes(opened, closed) == ["$.data: closed to additional properties"]


def test_a_v2_is_a_separate_contract_next_to_v1() -> None:
    """Breaking changes ship as a new type; v1's published schema is left as it was."""
    v1 = event_schema("task.step.progress.v1")
    v2 = copy.deepcopy(v1)
    v2["properties"]["type"]["const"] = "task.step.progress.v2"
    del v2["properties"]["data"]["properties"]["message"]
    assert breaking_changes(v1, v2)  # as an edit of v1 it would break...
    assert breaking_changes(v1, v1) == []  # ...so v1 stays, and v2 gets its own file


# --- AsyncAPI -------------------------------------------------------------------------------


def test_asyncapi_describes_the_sse_channel_and_both_broker_channels() -> None:
    doc = json.loads(Path(ASYNCAPI_FILE).read_text("utf-8"))
    assert doc["asyncapi"] == "3.0.0"
    channels = {channel["address"] for channel in doc["channels"].values()}
    assert channels == {"/tasks/{task_id}/events", "task.{task_id}", "taskplane:events"}
    for channel in ("taskEvents", "taskTopic"):
        assert set(TYPES) <= set(doc["channels"][channel]["messages"])
    for event_type in TYPES:
        payload = doc["components"]["schemas"][event_type]
        assert payload["properties"]["type"]["const"] == event_type
    # Every operation's messages belong to its channel (an AsyncAPI 3 rule).
    for operation in doc["operations"].values():
        channel = operation["channel"]["$ref"].removeprefix("#/channels/")
        for message in operation["messages"]:
            assert message["$ref"].startswith(f"#/channels/{channel}/messages/")


def test_the_guide_catalogues_every_type_and_field() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text("utf-8")
    for event_type, model in EVENT_MODELS.items():
        assert f"`{event_type}`" in guide, event_type
        for field in model.model_fields:
            assert f"`{field}`" in guide, f"{event_type}.{field}"
