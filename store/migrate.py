"""Apply the versioned SQL files in `store/migrations/`, once each.

Runs under a session-level advisory lock, so two processes migrating at once
serialise and the second finds nothing left to do. Then the partitions of `events`
(store/partitions.py) are made ahead of time, under the same lock.
"""

from __future__ import annotations

import logging
from importlib import resources

import psycopg

from store.partitions import PartitionPolicy, make_ahead

log = logging.getLogger(__name__)

# Arbitrary but fixed: the advisory-lock key that serialises migrators.
MIGRATION_LOCK_KEY = 0x7A5C_91A1

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def migration_files() -> list[tuple[str, str]]:
    """(version, sql) pairs in apply order; the version is the file's stem."""
    folder = resources.files("store") / "migrations"
    files = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".sql")),
        key=lambda entry: entry.name,
    )
    return [(entry.name.removesuffix(".sql"), entry.read_text("utf-8")) for entry in files]


async def migrate(conninfo: str, partitions: PartitionPolicy | None = None) -> list[str]:
    """Apply pending migrations, make the partitions of `events` due (`partitions`: the
    width and how far ahead; the defaults when None); return the versions applied."""
    applied: list[str] = []
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            await conn.execute(_CREATE_LEDGER)
            cursor = await conn.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in await cursor.fetchall()}
            for version, sql in migration_files():
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql.encode())
                    await conn.execute(
                        "INSERT INTO schema_migrations (version) VALUES (%s)", (version,)
                    )
                log.info("migration applied", extra={"version": version})
                applied.append(version)
            await make_ahead(conn, partitions or PartitionPolicy())
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied
