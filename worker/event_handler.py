"""What a durable event handler is, for whoever writes one, and how configuration names one.

Split from worker/handlers.py, which runs handlers: a handler's author (a slice,
a test, `TASKPLANE_EVENT_HANDLERS`) needs only these few names, not the runner.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from psycopg import AsyncConnection

from schemas import EventEnvelope

HandlerFunc = Callable[[EventEnvelope, AsyncConnection], Awaitable[None]]


class PermanentHandlerError(Exception):
    """Raised by a handler that can never succeed with this event: dead-letter it now."""


class HandlerConfigurationError(ValueError):
    """A `TASKPLANE_EVENT_HANDLERS` entry that does not name an `EventHandler`."""


@dataclass(frozen=True, slots=True)
class EventHandler:
    """One durable handler. `name` is its consumer group and its key in `processed_events`."""

    name: str
    handle: HandlerFunc
    event_types: frozenset[str] | None = None  # None: every type
    # A cheap test run before anything is written: an event it rejects is only
    # acknowledged, with no `processed_events` mark (it has no effect to make once).
    applies_to: Callable[[EventEnvelope], Awaitable[bool]] | None = None

    def wants(self, event_type: str) -> bool:
        return self.event_types is None or event_type in self.event_types

    async def concerns(self, envelope: EventEnvelope) -> bool:
        if not self.wants(envelope.type):
            return False
        return self.applies_to is None or await self.applies_to(envelope)


def load_handlers(spec: str) -> list[EventHandler]:
    """`"pkg.module:attr, other.module:attr"` → the `EventHandler` objects they name."""
    handlers = []
    for path in (part.strip() for part in spec.split(",")):
        if not path:
            continue
        module_name, _, attribute = path.partition(":")
        try:
            handler = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError, ValueError) as exc:
            raise HandlerConfigurationError(f"cannot load event handler {path!r}: {exc}") from exc
        if not isinstance(handler, EventHandler):
            raise HandlerConfigurationError(f"{path!r} is not an EventHandler")
        handlers.append(handler)
    return handlers
