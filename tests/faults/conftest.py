"""Fixtures of the fault tests: a database of each test's own, and the store to check against."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from psycopg_pool import AsyncConnectionPool

from store import open_pool
from tests.faults.effects import create_table
from tests.own_database import own_database


@pytest.fixture
async def fault_db(database_url: str) -> AsyncIterator[str]:
    """This test's database (tests/own_database.py says why not the session's)."""
    async with own_database(database_url, "faults") as url:
        yield url


@pytest.fixture
async def truth(fault_db: str) -> AsyncIterator[AsyncConnectionPool]:
    """A pool straight to the test's database (never through a test's proxy)."""
    pool = await open_pool(fault_db, min_size=1, max_size=4)
    await create_table(pool)
    yield pool
    await pool.close()
