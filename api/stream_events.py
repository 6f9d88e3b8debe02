"""What a task's event stream reads and sends (api/streaming.py): its store, its events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from api.live_events import LiveEvent
from schemas import is_terminal
from store import StoredEvent


class EventHistory(Protocol):
    """What a stream reads from the store (`store.EventStore` in production)."""

    async def history(
        self, task_id: str, *, after: int = 0, limit: int = 100
    ) -> list[StoredEvent]: ...

    async def last_sequence(self, task_id: str) -> int | None: ...


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    sequence: int
    event_type: str
    envelope_json: str
    shared: LiveEvent | None = None  # a live event: its message's one decoding (and frames)

    @property
    def terminal(self) -> bool:
        return is_terminal(self.event_type)
