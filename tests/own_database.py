"""A fresh, migrated database of a test's own on the session's Postgres.

Workers alive elsewhere in the session (the e2e stacks) run outbox relays over
the session's database; they would take a test's pending outbox rows and publish
them to their own Redis — correct behaviour, but it hides what the test's own
relay does. A database per test keeps them apart (creating one takes ~0.3 s).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from devstack.aio import run_sync
from store.migrate import migrate


def _statements(prefix: str) -> tuple[str, sql.Composed, sql.Composed]:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    return name, create, drop


@asynccontextmanager
async def own_database(server_url: str, prefix: str = "test") -> AsyncIterator[str]:
    """Create and migrate a database next to `server_url`'s; yield its URL; drop it."""
    name, create, drop = _statements(prefix)
    async with await psycopg.AsyncConnection.connect(server_url, autocommit=True) as admin:
        await admin.execute(create)
    try:
        url = make_conninfo(server_url, dbname=name)
        await migrate(url)
        yield url
    finally:
        async with await psycopg.AsyncConnection.connect(server_url, autocommit=True) as admin:
            await admin.execute(drop)


@contextmanager
def own_database_sync(server_url: str, prefix: str = "test") -> Iterator[str]:
    """`own_database` for synchronous (module- or session-scoped) fixtures."""
    name, create, drop = _statements(prefix)
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(create)
    try:
        url = make_conninfo(server_url, dbname=name)
        run_sync(lambda: migrate(url))
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(drop)
