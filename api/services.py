"""The long-lived clients one API process owns, created and closed by the lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from broker import EventBroker
from settings import Settings
from store import EventStore, TaskReader
from temporal.tasks import TaskClient


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    pool: AsyncConnectionPool
    broker: EventBroker
    temporal: TaskClient
    events: EventStore
    tasks: TaskReader
