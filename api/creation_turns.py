"""Creations in flight per tenant in this API process: one tenant's flood waits its turn
here, so another tenant's `POST /tasks` does not queue behind it; and one park at a time
per concurrency key.

A tenant sending thousands of creations at once keeps this process's event loop, its
database pool and its Temporal client busy with them; every other tenant's creation
then waits behind the whole batch in flight (docs/performance.md, "Creation turns"). A
semaphore per tenant lets at most `limit` of one tenant's creations past validation at
a time; the rest wait on it (no work, no connection held), in arrival order. A tenant
with nothing in flight goes straight through. Per process, like the other limits in
api/limits.py: N processes let a tenant have N times `limit` in flight.

Parks (store/admission_park.py) of one key take that key's row lock in Postgres, so they
run one after another there whatever this process sends: `limit` parks of a full key in
flight were one working and the rest each holding a pooled connection and a Postgres
backend asleep on the lock, woken in turn. Here they wait their key's turn instead, in
arrival order, holding nothing (docs/performance.md, "Session 15: one park per key, and
three levers that moved nothing").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request

from telemetry.metrics import Metrics


class _KeyedTurns:
    """At most `limit` holders per key at once; only keys in use hold an entry."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._turns: dict[Hashable, tuple[asyncio.Semaphore, int]] = {}

    def waiting(self, key: Hashable) -> int:
        entry = self._turns.get(key)
        return entry[1] if entry else 0

    def total(self) -> int:
        return sum(users for _, users in self._turns.values())

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        gate, users = self._turns.get(key) or (asyncio.Semaphore(self._limit), 0)
        self._turns[key] = (gate, users + 1)
        try:
            async with gate:
                yield
        finally:
            gate, users = self._turns[key]
            if users > 1:
                self._turns[key] = (gate, users - 1)
            else:
                del self._turns[key]


class CreationTurns:
    """`limit` creations in flight per tenant (0: no limit); one park per key."""

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError("limit must be 0 (none) or more")
        self.limit = limit
        self._tenants = _KeyedTurns(limit)
        self._parks = _KeyedTurns(1)

    def waiting(self, tenant: str) -> int:
        """Creations of `tenant` in flight or waiting (0 when none)."""
        return self._tenants.waiting(tenant)

    def parks_waiting(self, task_type: str, concurrency_key: str) -> int:
        """Parks of the key in flight or waiting for their turn (0 when none)."""
        return self._parks.waiting((task_type, concurrency_key))

    def creations_in_turn(self) -> int:
        """Every tenant's creations in flight or waiting (0 with no limit: none wait)."""
        return self._tenants.total()

    def parks_in_turn(self) -> int:
        """Every key's parks in flight or waiting."""
        return self._parks.total()

    @asynccontextmanager
    async def turn(self, tenant: str) -> AsyncIterator[None]:
        if self.limit == 0:
            yield
            return
        async with self._tenants.hold(tenant):
            yield

    def park_turn(self, task_type: str, concurrency_key: str) -> AbstractAsyncContextManager[None]:
        """The key's turn to park (or to find it has a free slot): one at a time."""
        return self._parks.hold((task_type, concurrency_key))


def register_turn_metrics(metrics: Metrics, turns: CreationTurns) -> None:
    """What is in this process's turns, read at scrape time."""
    metrics.gauge(
        "taskplane_task_creations_in_turn",
        "creations past validation or waiting for their tenant's turn",
        lambda: float(turns.creations_in_turn()),
    )
    metrics.gauge(
        "taskplane_task_parks_in_turn",
        "creations of a limited type parking or waiting for their key's turn to park",
        lambda: float(turns.parks_in_turn()),
    )


async def get_creation_turns(request: Request) -> CreationTurns:
    turns: CreationTurns = request.app.state.creation_turns
    return turns


CreationTurnsDep = Annotated[CreationTurns, Depends(get_creation_turns)]
