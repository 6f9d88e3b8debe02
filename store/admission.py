"""Admission slots per concurrency key (migration 0014, docs/flow-control.md).

Every claim that may take a slot and every release take the key's `admission_keys`
row lock first (the upsert of a claim takes it too), then change `running` and the
tickets it counts in the same transaction: a slot is never given twice, whatever
races. A claim repeated by a task whose ticket holds a slot changes no count and takes
no key lock: it reads its answer from the ticket.
Who goes next when a slot frees is decided here too, under the same lock:
weighted round robin across the tenants waiting on the key (start-time fair
queueing over `admission_served`), then priority (1 first), then arrival.

The callers (the admission activities, the reconciler's keeper) send the
signals after commit: `Admission.granted` names the tasks that now hold a slot
and were not told yet, `Admission.to_cancel` the ones cancel_in_progress stops.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from schemas.admission import AdmissionDecision, AdmissionRequest
from store.admission_sql import (
    ACTIVE_HOLDERS,
    ADMIT,
    CLAIM_KEY,
    DROP_TICKET,
    DROP_WAITERS,
    ENQUEUE,
    FAST_CLAIM,
    HEADS,
    LOCK_KEY,
    LOCK_TICKET_KEY,
    POSITION,
    PREEMPT,
    QUEUED,
    TICKET,
    WOKEN,
)
from store.autocommit import autocommit


@dataclass
class Admission:
    """A claim's or release's outcome: the decision for the caller's own task (claims),
    the tasks now admitted to wake, and the tasks to cancel (with the reason)."""

    decision: AdmissionDecision | None = None
    granted: list[str] = field(default_factory=list)
    to_cancel: list[tuple[str, str]] = field(default_factory=list)


class AdmissionStore:
    def __init__(self, pool: AsyncConnectionPool, weights: Mapping[str, float]) -> None:
        self.pool = pool
        self._weights = dict(weights)

    def weight(self, tenant: str) -> float:
        return self._weights.get(tenant, 1.0)

    async def acquire(self, request: AdmissionRequest) -> Admission:
        """Ask for a slot; a repeat (a retried activity, a reset run) answers the same."""
        key = {"task_type": request.task_type, "key": request.concurrency_key}
        async with self.pool.connection() as conn:
            # The common cases: one statement, atomic on its own, one round trip.
            async with autocommit(conn):
                fast = await self._fast_claim(conn, request)
            if fast is not None:
                return Admission(decision=AdmissionDecision(outcome="admitted", running=fast))
            async with conn.transaction():
                await conn.execute(CLAIM_KEY, {**key, "limit": request.limit})
                existing = await (await conn.execute(TICKET, (request.task_id,))).fetchone()
                outcome = Admission()
                if existing is None:
                    running, limit, _ = await self._locked(conn, key)
                    queued = await self._scalar(conn, QUEUED, key)
                    full = running + queued >= limit
                    if full and request.strategy == "cancel_newest":
                        reason = (
                            f"concurrency key {request.concurrency_key!r} is at its limit of"
                            f" {limit} (strategy cancel_newest)"
                        )
                        outcome.decision = AdmissionDecision(
                            outcome="cancelled", running=running, reason=reason
                        )
                        return outcome
                    if full and request.strategy == "cancel_in_progress":
                        outcome.to_cancel = await self._preempt(conn, key, limit, request.task_id)
                    await conn.execute(
                        ENQUEUE,
                        {
                            **key,
                            "task_id": request.task_id,
                            "tenant": request.tenant,
                            "priority": request.priority,
                        },
                    )
                outcome.granted = await self._dispatch(conn, key)
                state = await (await conn.execute(TICKET, (request.task_id,))).fetchone()
                running = (await self._locked(conn, key))[0]
                if state is not None and state[2] == "running":
                    outcome.granted = [t for t in outcome.granted if t != request.task_id]
                    await conn.execute(WOKEN, (request.task_id,))  # it hears it from us
                    outcome.decision = AdmissionDecision(outcome="admitted", running=running)
                else:
                    position = await self._scalar(conn, POSITION, {"task_id": request.task_id})
                    outcome.decision = AdmissionDecision(
                        outcome="queued", position=position, running=running
                    )
        return outcome

    @staticmethod
    async def _fast_claim(conn: AsyncConnection, request: AdmissionRequest) -> int | None:
        params = {
            "task_type": request.task_type,
            "key": request.concurrency_key,
            "limit": request.limit,
            "task_id": request.task_id,
            "tenant": request.tenant,
            "priority": request.priority,
        }
        row = await (await conn.execute(FAST_CLAIM, params)).fetchone()
        return int(row[0]) if row is not None else None

    async def release(self, task_id: str) -> Admission:
        """Give back the task's slot (or its place in line); admit who is next."""
        async with self.pool.connection() as conn, conn.transaction():
            # The key first, as every claim locks it.
            row = await (await conn.execute(LOCK_TICKET_KEY, (task_id,))).fetchone()
            if row is None:
                return Admission()
            key = {"task_type": str(row[0]), "key": str(row[1])}
            running, limit, vtime = int(row[2]), int(row[3]), float(row[4])
            dropped = await conn.execute(DROP_TICKET, {**key, "task_id": task_id})
            freed = await dropped.fetchone()  # None: it held no slot, or was gone already
            if freed is not None:
                running = int(freed[0])
            return Admission(granted=await self._dispatch(conn, key, (running, limit, vtime)))

    async def dispatch(self, task_type: str, concurrency_key: str) -> list[str]:
        """Admit waiters into the key's free slots (the keeper's cure for a stuck key)."""
        key = {"task_type": task_type, "key": concurrency_key}
        async with self.pool.connection() as conn, conn.transaction():
            return await self._dispatch(conn, key)

    async def _dispatch(
        self,
        conn: AsyncConnection,
        key: dict[str, str],
        counters: tuple[int, int, float] | None = None,
    ) -> list[str]:
        """Grant the key's free slots; `counters` (running, limit, vtime) when the caller
        holds the key's lock already and knows them, else they are locked and read here."""
        granted: list[str] = []
        running, limit, vtime = counters or await self._locked(conn, key)
        while running < limit:
            heads = await (await conn.execute(HEADS, key)).fetchall()
            if not heads:
                break
            # Start-time fair queueing: a tenant's next grant starts where its last one
            # finished (or now, if it was idle) and lasts 1 / weight; earliest start wins.
            best = min(heads, key=lambda h: (max(float(h[3]), vtime), h[2]))
            tenant, task_id = str(best[0]), str(best[1])
            start = max(float(best[3]), vtime)
            vfinish = start + 1.0 / self.weight(tenant)
            await conn.execute(
                ADMIT,
                {**key, "task_id": task_id, "tenant": tenant, "vfinish": vfinish, "vtime": start},
            )
            running, vtime = running + 1, max(vtime, start)
            granted.append(task_id)
        return granted

    async def _preempt(
        self, conn: AsyncConnection, key: dict[str, str], limit: int, newcomer: str
    ) -> list[tuple[str, str]]:
        reason = (
            f"superseded by task {newcomer} on concurrency key {key['key']!r}"
            " (strategy cancel_in_progress)"
        )
        dropped = [str(r[0]) for r in await (await conn.execute(DROP_WAITERS, key)).fetchall()]
        active = await self._scalar(conn, ACTIVE_HOLDERS, key)
        excess = active + 1 - limit
        stopped: list[str] = []
        if excess > 0:
            rows = await (await conn.execute(PREEMPT, {**key, "n": excess})).fetchall()
            stopped = [str(r[0]) for r in rows]
        return [(task_id, reason) for task_id in [*dropped, *stopped]]

    @staticmethod
    async def _locked(conn: AsyncConnection, key: dict[str, str]) -> tuple[int, int, float]:
        row = await (await conn.execute(LOCK_KEY, key)).fetchone()
        if row is None:
            raise LookupError(f"no admission key {key}")
        return int(row[0]), int(row[1]), float(row[2])

    @staticmethod
    async def _scalar(conn: AsyncConnection, statement: str, params: dict[str, str]) -> int:
        row = await (await conn.execute(statement, params)).fetchone()
        return int(row[0]) if row is not None else 0
