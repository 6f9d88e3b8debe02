from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from psycopg_pool import AsyncConnectionPool

from store import open_pool


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    the_pool = await open_pool(database_url, min_size=1, max_size=8)
    yield the_pool
    await the_pool.close()
