"""Upcasting: every reader inside Taskplane sees the latest version of a type.

Events are stored as their producer wrote them and never rewritten. When a type
gets a breaking successor (`task.terminated.v1` → `.v2`, docs/events.md), one
adapter per step `vN → vN+1` is registered here, and the read paths (the SSE
stream and `/history` by default, the durable handlers, the read model) pass
each event through `upcast`, so their code handles only the newest version.
SSE and history clients that want what was stored ask with `?version=stored`.

An adapter is a pure function of the older `data`; the envelope keeps its id,
subject, time, sequence and extensions. Its output is validated against the
newer model, so an adapter cannot produce an event its type's schema refuses.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from schemas.envelope import EventEnvelope, schema_id
from schemas.registry import EVENT_MODELS, read_data


@dataclass(frozen=True, slots=True)
class Upcaster:
    source: str
    target: str
    convert: Callable[[dict[str, Any]], dict[str, Any]]


def _terminated_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "timed_out": data.get("close_status") == "TIMED_OUT"}


UPCASTERS: dict[str, Upcaster] = {
    upcaster.source: upcaster
    for upcaster in (Upcaster("task.terminated.v1", "task.terminated.v2", _terminated_v1_to_v2),)
}


def _version(event_type: str) -> tuple[str, int]:
    family, _, version = event_type.rpartition(".v")
    return family, int(version)


def _check(upcasters: dict[str, Upcaster]) -> None:
    """Each adapter goes one version up within its family, between registered types."""
    for upcaster in upcasters.values():
        for name in (upcaster.source, upcaster.target):
            if name not in EVENT_MODELS:
                raise ValueError(f"upcaster {upcaster.source}: {name} is not registered")
        (family, old), (new_family, new) = _version(upcaster.source), _version(upcaster.target)
        if new_family != family or new != old + 1:
            raise ValueError(f"upcaster {upcaster.source} → {upcaster.target}: not vN → vN+1")


_check(UPCASTERS)


# Types only readers see (an adapter makes them): no producer records them yet, so
# whatever matches recorded types (webhook subscriptions) must name the source instead.
READ_ONLY_TYPES: frozenset[str] = frozenset(upcaster.target for upcaster in UPCASTERS.values())


def recorded_type_for(event_type: str) -> str:
    """The recorded type whose events readers see as `event_type` (itself if recorded)."""
    for upcaster in UPCASTERS.values():
        if upcaster.target == event_type:
            return recorded_type_for(upcaster.source)
    return event_type


def latest_type(event_type: str) -> str:
    """The type a reader sees for an event stored as `event_type`."""
    while event_type in UPCASTERS:
        event_type = UPCASTERS[event_type].target
    return event_type


def needs_upcast(event_type: str) -> bool:
    return event_type in UPCASTERS


def upcast(envelope: EventEnvelope) -> EventEnvelope:
    """`envelope` at the latest version of its type (the same object when it already is).

    Raises `InvalidEventDataError` when an adapter's output is not a valid newer event
    (the stored event was not a valid older one)."""
    if envelope.type not in UPCASTERS:
        return envelope
    event_type, data = envelope.type, envelope.data
    while event_type in UPCASTERS:
        step = UPCASTERS[event_type]
        event_type, data = step.target, step.convert(data)
        read_data(event_type, data)
    moved: dict[str, Any] = {"type": event_type, "data": data}
    if envelope.dataschema is not None:
        moved["dataschema"] = schema_id(event_type)
    return envelope.model_copy(update=moved)


def upcast_json(envelope_json: str, event_type: str) -> str:
    """The serialized event at its latest version; untouched (no parse) when it is already.

    For forwarders that hold an event as text (the SSE stream, `/history`): only
    the few events of an older version pay for a parse and a serialization."""
    if event_type not in UPCASTERS:
        return envelope_json
    envelope = EventEnvelope.model_validate(json.loads(envelope_json))
    return upcast(envelope).to_json()
