"""`decode_event`: every kind of garbage a broker can hand over is refused, and says why."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas import (
    EVENT_MODELS,
    MAX_EVENT_BYTES,
    MAX_SEQUENCE,
    EventEnvelope,
    InvalidEventDataError,
    InvalidEventError,
    MalformedEventError,
    OversizedEventError,
    UnknownEventTypeError,
    check_size,
    decode_event,
    read_data,
    validate_data,
)
from schemas.examples import EXAMPLE_DATA

WHEN = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def envelope(event_type: str = "task.step.progress.v1", **data: Any) -> EventEnvelope:
    return EventEnvelope(
        id="e1",
        type=event_type,
        subject="t1",
        time=WHEN,
        data=data or EXAMPLE_DATA[event_type],
    ).with_sequence(3)


def raw(**changes: Any) -> str:
    """A valid serialized progress event with top-level members replaced (None deletes)."""
    body = json.loads(envelope().to_json())
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return json.dumps(body, ensure_ascii=False)


def data_raw(**changes: Any) -> str:
    data = {**EXAMPLE_DATA["task.step.progress.v1"], **changes}
    return raw(data={k: v for k, v in data.items() if v is not None})


@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
def test_every_valid_event_type_decodes_to_the_same_envelope(event_type: str) -> None:
    original = envelope(event_type)
    for payload in (original.to_json(), original.to_json().encode()):
        assert decode_event(payload) == original


def test_errors_are_typed_and_share_one_base() -> None:
    for error in (
        MalformedEventError,
        UnknownEventTypeError,
        InvalidEventDataError,
        OversizedEventError,
    ):
        assert issubclass(error, InvalidEventError)
    assert issubclass(InvalidEventError, ValueError)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param("", id="empty"),
        pytest.param("{", id="truncated-json"),
        pytest.param("not json at all", id="text"),
        pytest.param(b"\xff\xfe\x00garbage", id="not-utf8"),
        pytest.param("[]", id="array"),
        pytest.param('"a string"', id="json-string"),
        pytest.param("null", id="json-null"),
        pytest.param("42", id="json-number"),
    ],
)
def test_bad_json_is_malformed(payload: str | bytes) -> None:
    with pytest.raises(MalformedEventError):
        decode_event(payload)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"id": None}, id="missing-id"),
        pytest.param({"source": None}, id="missing-source"),
        pytest.param({"type": None}, id="missing-type"),
        pytest.param({"subject": None}, id="missing-subject"),
        pytest.param({"time": None}, id="missing-time"),
        pytest.param({"data": None}, id="missing-data"),
        pytest.param({"sequence": None}, id="missing-sequence"),
        pytest.param({"specversion": None}, id="missing-specversion"),
        pytest.param({"datacontenttype": None}, id="missing-datacontenttype"),
        pytest.param({"id": ""}, id="empty-id"),
        pytest.param({"id": 7}, id="numeric-id"),
        pytest.param({"subject": ["t1"]}, id="list-subject"),
        pytest.param({"specversion": "0.3"}, id="specversion-0.3"),
        pytest.param({"specversion": 1.0}, id="specversion-number"),
        pytest.param({"datacontenttype": "text/plain"}, id="other-content-type"),
        pytest.param({"sequence": 0}, id="zero-sequence"),
        pytest.param({"sequence": -1}, id="negative-sequence"),
        pytest.param({"sequence": MAX_SEQUENCE + 1}, id="sequence-over-int32"),
        pytest.param({"sequence": "3"}, id="string-sequence"),
        pytest.param({"sequence": 3.5}, id="fractional-sequence"),
        pytest.param({"sequence": True}, id="boolean-sequence"),
        pytest.param({"time": "yesterday"}, id="time-words"),
        pytest.param({"time": "2026-01-02"}, id="time-date-only"),
        pytest.param({"time": "2026-01-02T03:04:05"}, id="time-without-offset"),
        pytest.param({"time": "2026-01-02 03:04:05Z"}, id="time-space-separator"),
        pytest.param({"time": 1767323045}, id="time-unix-number"),
        pytest.param({"data": [1, 2]}, id="data-array"),
        pytest.param({"data": "{}"}, id="data-string"),
        pytest.param({"data_base64": "e30="}, id="data-base64"),
        pytest.param({"Trace_ID": "x"}, id="extension-bad-name"),
        pytest.param({"traceid": {"a": 1}}, id="extension-object-value"),
    ],
)
def test_bad_envelope_attributes_are_malformed(changes: dict[str, Any]) -> None:
    payload = raw(**changes)
    with pytest.raises(MalformedEventError):
        decode_event(payload)


def test_a_well_formed_extension_attribute_is_carried_through() -> None:
    decoded = decode_event(raw(partitionkey="tenant-a"))
    assert decoded.model_extra == {"partitionkey": "tenant-a"}


def test_the_tracing_extension_is_known_and_checked() -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    decoded = decode_event(raw(traceparent=traceparent, tracestate="vendor=1"))
    assert (decoded.traceparent, decoded.tracestate) == (traceparent, "vendor=1")
    assert decoded.model_extra == {}
    with pytest.raises(MalformedEventError, match="traceparent"):
        decode_event(raw(traceparent="00-abc-def-01"))


def test_unknown_type_says_which() -> None:
    with pytest.raises(UnknownEventTypeError) as caught:
        decode_event(raw(type="task.exploded.v1"))
    assert caught.value.event_type == "task.exploded.v1"
    assert "task.exploded.v1" in str(caught.value)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"index": None}, id="missing-required-field"),
        pytest.param({"index": "1"}, id="string-for-integer"),
        pytest.param({"index": 1.5}, id="float-for-integer"),
        pytest.param({"index": 0}, id="integer-below-minimum"),
        pytest.param({"percent": 140}, id="number-above-maximum"),
        pytest.param({"percent": "50"}, id="string-for-number"),
        pytest.param({"name": 5}, id="number-for-string"),
        pytest.param({"message": ["a"]}, id="list-for-optional-string"),
    ],
)
def test_data_that_breaks_the_model_is_invalid_data(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidEventDataError) as caught:
        decode_event(data_raw(**changes))
    assert caught.value.event_type == "task.step.progress.v1"


def test_a_reader_ignores_data_fields_it_does_not_know() -> None:
    """A newer producer may add optional fields within a version (docs/events.md)."""
    payload = data_raw(eta_seconds=12.5, hints={"nested": [1, 2]})
    decoded = decode_event(payload)
    assert decoded.type == "task.step.progress.v1"
    # The event is passed on as sent (a forwarding reader does not rewrite it) ...
    assert decoded.data["eta_seconds"] == 12.5
    # ... and what the reader understands of it is exactly the v1 fields.
    assert read_data(decoded.type, decoded.data) == read_data(
        decoded.type, EXAMPLE_DATA["task.step.progress.v1"]
    )


def test_a_publisher_is_still_refused_a_field_its_type_does_not_have() -> None:
    """Tolerance is for readers: a publisher's typo must not vanish from the event."""
    with pytest.raises(InvalidEventDataError, match="precent"):
        validate_data(
            "task.step.progress.v1", {**EXAMPLE_DATA["task.step.progress.v1"], "precent": 5}
        )


def test_a_reader_still_refuses_a_known_field_with_the_wrong_type_next_to_unknown_ones() -> None:
    with pytest.raises(InvalidEventDataError):
        decode_event(data_raw(eta_seconds=1, percent="50"))


def test_unknown_extension_attributes_are_accepted_and_ignored() -> None:
    decoded = decode_event(raw(partitionkey="tenant-a", priority=3, replayed=True))
    assert decoded.model_extra == {"partitionkey": "tenant-a", "priority": 3, "replayed": True}
    assert decoded.data == EXAMPLE_DATA["task.step.progress.v1"]


def test_boolean_fields_refuse_truthy_strings() -> None:
    failed = json.loads(envelope("task.step.failed.v1").to_json())
    failed["data"]["will_retry"] = "yes"
    with pytest.raises(InvalidEventDataError):
        decode_event(json.dumps(failed))


def _padded(total_bytes: int) -> str:
    """A valid progress event whose serialization is exactly `total_bytes` long."""
    base = data_raw(message="")
    return data_raw(message="x" * (total_bytes - len(base.encode())))


def test_an_event_of_exactly_64_kib_decodes_and_one_byte_more_does_not() -> None:
    at_limit = _padded(MAX_EVENT_BYTES)
    assert len(at_limit.encode()) == MAX_EVENT_BYTES
    assert decode_event(at_limit).data["message"].startswith("xxx")
    over = _padded(MAX_EVENT_BYTES + 1)
    with pytest.raises(OversizedEventError) as caught:
        decode_event(over)
    assert caught.value.size == MAX_EVENT_BYTES + 1


def test_size_is_counted_in_utf8_bytes_not_characters() -> None:
    base = data_raw(message="")
    # Each "é" is one character but two bytes.
    chars = (MAX_EVENT_BYTES - len(base.encode())) // 2 + 1
    payload = data_raw(message="é" * chars)
    assert len(payload) <= MAX_EVENT_BYTES < len(payload.encode())
    with pytest.raises(OversizedEventError):
        decode_event(payload)


def test_garbage_over_the_limit_is_refused_as_oversized_before_parsing() -> None:
    with pytest.raises(OversizedEventError):
        decode_event("{" * (MAX_EVENT_BYTES + 1))


def test_check_size_reserves_room_for_the_sequence_the_store_will_add() -> None:
    unsequenced = EventEnvelope(
        id="e1", type="task.step.progress.v1", subject="t1", time=WHEN, data={}
    )
    reserve = len(f',"sequence":{MAX_SEQUENCE}')
    assert check_size(unsequenced) == len(unsequenced.to_json().encode()) + reserve
    sequenced = unsequenced.with_sequence(MAX_SEQUENCE)
    assert check_size(sequenced) == len(sequenced.to_json().encode())
    assert check_size(unsequenced) == check_size(sequenced)


def test_check_size_refuses_an_envelope_over_64_kib() -> None:
    big = EventEnvelope(
        id="e1",
        type="task.step.completed.v1",
        subject="t1",
        time=WHEN,
        data={"output": {"blob": "x" * MAX_EVENT_BYTES}},
    )
    with pytest.raises(OversizedEventError, match="link"):
        check_size(big)
