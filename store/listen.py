"""One Postgres LISTEN that stays alive: the wake-up line of the outbox relay and of the
webhook dispatcher.

A LISTEN needs a connection of its own, held open for as long as the process runs,
and three things go wrong with such a connection:

* it is closed (a Postgres restart, `pg_terminate_backend`, a proxy resetting it):
  psycopg raises, and `Listener.run` connects again with back-off;
* it is cut off without a reset (a stalled network path, a peer that vanished): the
  socket just stays quiet, indistinguishable from a channel nobody notifies. So
  after `check_every` seconds without a notice the listener asks the server
  something (`SELECT 1`, bounded); no answer counts as a lost connection;
* NOTIFYs sent while nobody listened are gone: after every (re)connect the
  callback is called with None, "look now", before any notice.

Callers keep a poll as the safety net either way: a NOTIFY is a hint, never the
only way to find work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg
from psycopg import AsyncConnection, sql

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 10
CHECK_TIMEOUT_SECONDS = 10.0


class Listener:
    """LISTEN on `channel` over a connection of its own, reconnecting until cancelled."""

    def __init__(
        self,
        conninfo: str,
        channel: str,
        *,
        check_every: float = 30.0,
        check_timeout: float = CHECK_TIMEOUT_SECONDS,
        retry_first: float = 0.5,
        retry_cap: float = 5.0,
        application_name: str | None = None,
    ) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._check_every = check_every
        self._check_timeout = check_timeout
        self._retry = (retry_first, max(retry_first, retry_cap))
        self._application_name = application_name or f"taskplane-listen-{channel}"
        self._listening = False
        self._connections = 0

    @property
    def listening(self) -> bool:
        """True while the LISTEN is in place (NOTIFYs reach the callback)."""
        return self._listening

    @property
    def connections(self) -> int:
        """LISTEN connections made so far: more than 1 means it had to reconnect."""
        return self._connections

    async def run(self, on_notice: Callable[[str | None], None]) -> None:
        """Call `on_notice(payload)` for every NOTIFY, and `on_notice(None)` after every
        (re)connect; reconnect with doubling back-off after losing the connection."""
        delay = self._retry[0]
        while True:
            connected = self._connections
            try:
                await self._listen_once(on_notice)
            except (psycopg.Error, OSError, TimeoutError) as exc:
                if self._connections > connected:  # it worked for a while: start over
                    delay = self._retry[0]
                log.warning(
                    "LISTEN connection lost; reconnecting",
                    extra={
                        "channel": self._channel,
                        "error": str(exc) or type(exc).__name__,
                        "retry_in": delay,
                    },
                )
            finally:
                self._listening = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry[1])

    async def _listen_once(self, on_notice: Callable[[str | None], None]) -> None:
        """Listen over one connection until it is lost (always ends by raising)."""
        async with await AsyncConnection.connect(
            self._conninfo,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            application_name=self._application_name,
        ) as conn:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
            self._connections += 1
            self._listening = True
            on_notice(None)  # NOTIFYs sent while not listening are lost: look now
            while True:
                async for note in conn.notifies(timeout=self._check_every):
                    on_notice(note.payload)
                # Quiet for `check_every`: make sure the connection is still there.
                async with asyncio.timeout(self._check_timeout):
                    await conn.execute("SELECT 1")
