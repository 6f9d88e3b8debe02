"""`store.listen.Listener` on the session's real Postgres: a LISTEN that stays alive.

Both ways a LISTEN connection dies are made to happen: the server ends it
(`pg_terminate_backend`, as a restart or an operator would), and it goes silent
without a reset (its backend stopped with SIGSTOP: the socket stays open and
nothing answers, as behind a stalled network path). Either way the listener must
notice, LISTEN again on a new connection, tell its caller to look (None), and
hear what is notified afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import psycopg
import pytest

from store.listen import Listener
from tests.polling import until

pytestmark = pytest.mark.timeout(60)


@asynccontextmanager
async def listening(listener: Listener, heard: list[str | None]) -> AsyncIterator[None]:
    running = asyncio.create_task(listener.run(heard.append))
    try:
        yield
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


def reached(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def condition() -> bool:
        return check()

    return condition


async def backend_pids(database_url: str, application_name: str) -> list[int]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s ORDER BY backend_start",
            (application_name,),
        )
        return [int(row[0]) for row in await cursor.fetchall()]


async def notify(database_url: str, channel: str, payload: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))


def new_listener(database_url: str, **kwargs: float) -> tuple[Listener, str, str]:
    channel = f"test_listen_{uuid.uuid4().hex[:8]}"
    name = f"test-{channel}"
    listener = Listener(
        database_url, channel, application_name=name, retry_first=0.05, retry_cap=0.2, **kwargs
    )
    return listener, channel, name


async def test_a_terminated_connection_is_noticed_and_listened_on_again(
    database_url: str,
) -> None:
    listener, channel, name = new_listener(database_url)
    heard: list[str | None] = []
    async with listening(listener, heard):
        await until(reached(lambda: listener.listening))
        await notify(database_url, channel, "before")
        await until(reached(lambda: heard == [None, "before"]))
        (first,) = await backend_pids(database_url, name)

        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        await until(reached(lambda: listener.connections == 2 and listener.listening))
        (second,) = await backend_pids(database_url, name)
        assert second != first
        await notify(database_url, channel, "after")
        # None again after the reconnect: what was notified in between is lost, look now.
        await until(reached(lambda: heard == [None, "before", None, "after"]))


async def test_a_connection_gone_silent_is_found_out_by_the_liveness_check(
    database_url: str,
) -> None:
    listener, channel, name = new_listener(database_url, check_every=0.3, check_timeout=0.5)
    heard: list[str | None] = []
    async with listening(listener, heard):
        await until(reached(lambda: listener.listening))
        (silent,) = await backend_pids(database_url, name)
        os.kill(silent, signal.SIGSTOP)  # the socket stays open; nothing answers any more
        try:
            await until(reached(lambda: listener.connections == 2 and listener.listening))
            await notify(database_url, channel, "heard on the new connection")
            await until(reached(lambda: heard[-1] == "heard on the new connection"))
        finally:
            os.kill(silent, signal.SIGCONT)
        assert heard.count(None) == 2
