"""The data converter of every Taskplane client and worker: Temporal's pydantic one, built once.

The SDK builds a fresh data converter for every workflow activation it decodes and
every completion it encodes (its command-aware converter, which picks a serialization
context per command), and a fresh payload converter for every workflow run; each
instantiates `payload_converter_class()`. With `temporalio.contrib.pydantic`'s
`PydanticPayloadConverter` that builds a `SchemaSerializer` and an empty cache of
`TypeAdapter`s every time, so every run rebuilt the adapters of its inputs and results
(docs/performance.md, "Session 10: worker CPU per task": ~14 % of the worker's
activation handling).

`SharedPydanticPayloadConverter` is the same converter, encodings and order, whose
encoding converters are built once per process and shared by every instance: the same
JSON out, the same types in, one `TypeAdapter` cache. None of them keeps state but that
cache (`functools.lru_cache`, thread-safe) and none takes a serialization context, so
sharing them across runs and threads changes nothing but the cost.
"""

from __future__ import annotations

from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import CompositePayloadConverter, DataConverter

# PydanticPayloadConverter's encoding converters (binary/null, binary/plain, json/protobuf,
# binary/protobuf, json/plain through pydantic), in its order, built once.
_SHARED = tuple(PydanticPayloadConverter().converters.values())


class SharedPydanticPayloadConverter(CompositePayloadConverter):
    """`PydanticPayloadConverter` over the process's one set of encoding converters."""

    def __init__(self) -> None:  # nullary: the SDK instantiates the class itself
        super().__init__(*_SHARED)


data_converter = DataConverter(payload_converter_class=SharedPydanticPayloadConverter)
"""Taskplane's data converter: `pydantic_data_converter`'s payloads, cheaper to build."""
