"""One statement, one round trip: a pool connection in autocommit for a block.

The pools' connections are not in autocommit, so a statement on its own costs three
round trips (BEGIN, the statement, COMMIT when the pool takes the connection back).
The recording path sends single statements that are atomic on their own (the event
append, the outbox mark): in autocommit each is one round trip, and `conn.transaction()`
still opens a real transaction where one is needed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus

# Raised by `taskplane_append_raced` (migration 0013): an append of an event id that a
# concurrent append committed while this one waited; nothing of it was written.
APPEND_RACED_SQLSTATE = "TP409"


@asynccontextmanager
async def autocommit(conn: AsyncConnection[Any]) -> AsyncIterator[AsyncConnection[Any]]:
    """`conn` (idle, from a pool) in autocommit for the block; as it was afterwards, so
    the pool hands it out unchanged (setting the mode costs no round trip). A connection
    already in a transaction (a caller batching appends in one) is left in it."""
    if conn.info.transaction_status != TransactionStatus.IDLE:
        yield conn
        return
    was = conn.autocommit
    await conn.set_autocommit(True)
    try:
        yield conn
    finally:
        await conn.set_autocommit(was)
