"""Postgres: migrations, the event store, the outbox and the task read model."""

from store.events import AppendResult, EventStore, StoredEvent
from store.outbox import Outbox, OutboxBacklog, OutboxNotice, PendingEvent
from store.pool import open_pool
from store.tasks import InvalidCursorError, TaskPage, TaskReader, TaskRecord

__all__ = [
    "AppendResult",
    "EventStore",
    "InvalidCursorError",
    "Outbox",
    "OutboxBacklog",
    "OutboxNotice",
    "PendingEvent",
    "StoredEvent",
    "TaskPage",
    "TaskReader",
    "TaskRecord",
    "open_pool",
]
