"""The long-lived clients one API process owns, created and closed by the lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client

from broker import EventBroker
from settings import Settings
from store import EventStore, TaskReader


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    pool: AsyncConnectionPool
    broker: EventBroker
    temporal: Client
    events: EventStore
    tasks: TaskReader
