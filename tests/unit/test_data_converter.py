"""Taskplane's data converter writes and reads what `pydantic_data_converter` does, built once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from temporalio.contrib.pydantic import PydanticPayloadConverter, pydantic_data_converter
from temporalio.converter import DataConverter, WorkflowSerializationContext

from schemas.workflow import RecordEventResult
from temporal.converter import SharedPydanticPayloadConverter, data_converter

VALUES: list[Any] = [
    RecordEventResult(sequence=3, duplicate=False),
    {"a": 1, "b": [1.5, None, "x"]},
    b"raw",
    None,
    datetime(2026, 12, 5, 0, 30, tzinfo=UTC),
    uuid.UUID("9bb2f61c-5a79-400e-bb2f-2f0942c84e7a"),
    "text",
]
HINTS: list[type] = [RecordEventResult, dict, bytes, type(None), datetime, uuid.UUID, str]


def test_the_same_payloads_as_the_pydantic_converter() -> None:
    ours = data_converter.payload_converter.to_payloads(VALUES)
    theirs = pydantic_data_converter.payload_converter.to_payloads(VALUES)
    assert ours == theirs
    assert data_converter.payload_converter.from_payloads(theirs, HINTS) == VALUES
    assert pydantic_data_converter.payload_converter.from_payloads(ours, HINTS) == VALUES


def test_every_instance_shares_the_encoding_converters() -> None:
    # The SDK instantiates the class per activation and per run: nothing is rebuilt.
    first, second = SharedPydanticPayloadConverter(), SharedPydanticPayloadConverter()
    assert list(first.converters) == list(PydanticPayloadConverter().converters)
    for encoding, converter in first.converters.items():
        assert second.converters[encoding] is converter
    rebuilt = DataConverter(payload_converter_class=SharedPydanticPayloadConverter)
    assert rebuilt.payload_converter.to_payloads(VALUES) == (
        data_converter.payload_converter.to_payloads(VALUES)
    )


def test_a_serialization_context_changes_nothing() -> None:
    context = WorkflowSerializationContext(namespace="default", workflow_id="task-1")
    with_context = data_converter.with_context(context)
    assert with_context.payload_converter.to_payloads(VALUES) == (
        data_converter.payload_converter.to_payloads(VALUES)
    )
