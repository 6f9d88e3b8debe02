"""Creations in flight per tenant in this API process: one tenant's flood waits its turn
here, so another tenant's `POST /tasks` does not queue behind it.

A tenant sending thousands of creations at once keeps this process's event loop, its
database pool and its Temporal client busy with them; every other tenant's creation
then waits behind the whole batch in flight (docs/performance.md, "Creation turns"). A
semaphore per tenant lets at most `limit` of one tenant's creations past validation at
a time; the rest wait on it (no work, no connection held), in arrival order. A tenant
with nothing in flight goes straight through. Per process, like the other limits in
api/limits.py: N processes let a tenant have N times `limit` in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request


class CreationTurns:
    """`limit` creations in flight per tenant; 0: no limit."""

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError("limit must be 0 (none) or more")
        self.limit = limit
        # Only tenants with a creation in flight or waiting hold an entry.
        self._turns: dict[str, tuple[asyncio.Semaphore, int]] = {}

    def waiting(self, tenant: str) -> int:
        """Creations of `tenant` in flight or waiting (0 when none)."""
        entry = self._turns.get(tenant)
        return entry[1] if entry else 0

    @asynccontextmanager
    async def turn(self, tenant: str) -> AsyncIterator[None]:
        if self.limit == 0:
            yield
            return
        gate, users = self._turns.get(tenant) or (asyncio.Semaphore(self.limit), 0)
        self._turns[tenant] = (gate, users + 1)
        try:
            async with gate:
                yield
        finally:
            gate, users = self._turns[tenant]
            if users > 1:
                self._turns[tenant] = (gate, users - 1)
            else:
                del self._turns[tenant]


async def get_creation_turns(request: Request) -> CreationTurns:
    turns: CreationTurns = request.app.state.creation_turns
    return turns


CreationTurnsDep = Annotated[CreationTurns, Depends(get_creation_turns)]
