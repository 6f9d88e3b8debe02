"""How long Postgres's WAL flushes took during a latency round (`pg_stat_io`).

Postgres stamps a transaction's commit time (`pg_xact_commit_timestamp`, the
latency part's "committed") when it writes the commit record, BEFORE it flushes
the WAL to disk; the writer learns of the commit, and so can publish the event,
only after the flush. The flush is therefore inside "committed -> SSE client", and
on this machine's shared virtual disk it is often the largest hop of its tail
(docs/performance.md, "Commit → SSE tail (session 9)"). It cannot be left out
without weakening durability, so the bench reports it next to the latency: WAL
syncs during the round and their mean time. Needs `track_wal_io_timing` (the
bench's own Postgres turns it on, bench/stack.py) and Postgres 18's WAL rows in
`pg_stat_io`; on a server without them the figures are simply absent.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

WAL_SYNCS = (
    "SELECT coalesce(sum(fsyncs), 0)::float8, coalesce(sum(fsync_time), 0)::float8,"
    " current_setting('track_wal_io_timing')"
    " FROM pg_stat_io WHERE object = 'wal'"
)


async def wal_syncs(pool: AsyncConnectionPool) -> tuple[float, float] | None:
    """(WAL syncs so far, their total ms), or None when the server cannot say."""
    async with pool.connection() as conn:
        try:
            row = await (await conn.execute(WAL_SYNCS)).fetchone()
        except psycopg.Error:  # older Postgres (no WAL rows in pg_stat_io), a server we were given
            await conn.rollback()
            return None
    if row is None or row[2] != "on":
        return None
    return float(row[0]), float(row[1])


def during(before: tuple[float, float] | None, after: tuple[float, float] | None) -> dict[str, Any]:
    """The round's WAL syncs and their mean duration (ms), for its results."""
    if before is None or after is None:
        return {}
    syncs, ms = after[0] - before[0], after[1] - before[1]
    return {
        "wal_syncs": int(syncs),
        "wal_sync_mean_ms": round(ms / syncs, 3) if syncs else None,
    }
