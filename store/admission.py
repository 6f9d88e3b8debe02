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
from store.autocommit import autocommit

# The common cases in one statement. A task with no ticket whose key has a free slot and
# nobody waiting takes the slot: the upsert locks the key's row and checks `running` on
# its latest version. A task whose ticket already holds a slot (a retried opening, or the
# run a release woke: it was granted before its run existed) is answered `admitted` again
# from its ticket alone, without the key's row lock, which the key's parks and releases
# hold in turn under a flood. Nothing is returned (and nothing changed) when the slot is
# not free, when someone waits, or when the task waits in line: then `acquire` goes the
# long way.
_FAST_CLAIM = """
WITH mine AS (
    UPDATE admission_tickets SET woken = true
    WHERE task_id = %(task_id)s AND state = 'running'
    RETURNING task_type, concurrency_key
), k AS (
    INSERT INTO admission_keys AS a (task_type, concurrency_key, max_running, running)
    SELECT %(task_type)s, %(key)s, %(limit)s, 1
    WHERE NOT EXISTS (SELECT 1 FROM admission_tickets m WHERE m.task_id = %(task_id)s)
    ON CONFLICT (task_type, concurrency_key) DO UPDATE
    SET running = a.running + 1, max_running = EXCLUDED.max_running, updated_at = now()
    WHERE a.running < EXCLUDED.max_running
      AND NOT EXISTS (SELECT 1 FROM admission_tickets q
                      WHERE q.task_type = a.task_type AND q.concurrency_key = a.concurrency_key
                        AND q.state = 'queued')
    RETURNING running
), ticket AS (
    INSERT INTO admission_tickets
        (task_id, task_type, concurrency_key, tenant, priority, state, admitted_at, woken)
    SELECT %(task_id)s, %(task_type)s, %(key)s, %(tenant)s, %(priority)s, 'running', now(), true
    FROM k
)
SELECT running FROM k
UNION ALL
SELECT a.running FROM admission_keys a JOIN mine USING (task_type, concurrency_key)
"""
_CLAIM_KEY = """
INSERT INTO admission_keys (task_type, concurrency_key, max_running)
VALUES (%(task_type)s, %(key)s, %(limit)s)
ON CONFLICT (task_type, concurrency_key)
DO UPDATE SET max_running = EXCLUDED.max_running, updated_at = now()
RETURNING running, max_running
"""
_LOCK_KEY = """
SELECT running, max_running, vtime FROM admission_keys
WHERE task_type = %(task_type)s AND concurrency_key = %(key)s FOR UPDATE
"""
_TICKET = "SELECT task_type, concurrency_key, state FROM admission_tickets WHERE task_id = %s"
# The line's length from its counters (migration 0023), not by counting its rows.
_QUEUED = """
SELECT coalesce(sum(queued), 0) FROM admission_line
WHERE task_type = %(task_type)s AND concurrency_key = %(key)s
"""
_ENQUEUE = """
INSERT INTO admission_tickets (task_id, task_type, concurrency_key, tenant, priority, state)
VALUES (%(task_id)s, %(task_type)s, %(key)s, %(tenant)s, %(priority)s, 'queued')
"""
_POSITION = """
SELECT count(*) + 1 FROM admission_tickets a, admission_tickets me
WHERE me.task_id = %(task_id)s AND a.task_type = me.task_type
  AND a.concurrency_key = me.concurrency_key AND a.state = 'queued'
  AND (a.priority, a.seq) < (me.priority, me.seq)
"""
# The head of each waiting tenant's line, with where that tenant's last grant finished.
_HEADS = """
SELECT DISTINCT ON (t.tenant) t.tenant, t.task_id, t.seq, coalesce(s.vfinish, 0)
FROM admission_tickets t
LEFT JOIN admission_served s USING (task_type, concurrency_key, tenant)
WHERE t.task_type = %(task_type)s AND t.concurrency_key = %(key)s AND t.state = 'queued'
ORDER BY t.tenant, t.priority, t.seq
"""
_GRANT = "UPDATE admission_tickets SET state = 'running', admitted_at = now() WHERE task_id = %s"
_SERVED = """
INSERT INTO admission_served (task_type, concurrency_key, tenant, vfinish)
VALUES (%(task_type)s, %(key)s, %(tenant)s, %(vfinish)s)
ON CONFLICT (task_type, concurrency_key, tenant) DO UPDATE SET vfinish = EXCLUDED.vfinish
"""
_COUNT = """
UPDATE admission_keys SET running = running + %(delta)s, vtime = greatest(vtime, %(vtime)s),
    updated_at = now()
WHERE task_type = %(task_type)s AND concurrency_key = %(key)s
"""
# cancel_in_progress: every older waiter, and the oldest holders not asked already.
_DROP_WAITERS = """
DELETE FROM admission_tickets
WHERE task_type = %(task_type)s AND concurrency_key = %(key)s AND state = 'queued'
RETURNING task_id
"""
_PREEMPT = """
UPDATE admission_tickets SET preempted = true WHERE task_id IN (
    SELECT task_id FROM admission_tickets
    WHERE task_type = %(task_type)s AND concurrency_key = %(key)s AND state = 'running'
      AND NOT preempted
    ORDER BY admitted_at, seq LIMIT %(n)s)
RETURNING task_id
"""
_ACTIVE_HOLDERS = """
SELECT count(*) FROM admission_tickets
WHERE task_type = %(task_type)s AND concurrency_key = %(key)s AND state = 'running'
  AND NOT preempted
"""
_WOKEN = "UPDATE admission_tickets SET woken = true WHERE task_id = %s"
_DELETE_TICKET = "DELETE FROM admission_tickets WHERE task_id = %s RETURNING state"


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
                await conn.execute(_CLAIM_KEY, {**key, "limit": request.limit})
                existing = await (await conn.execute(_TICKET, (request.task_id,))).fetchone()
                outcome = Admission()
                if existing is None:
                    running, limit, _ = await self._locked(conn, key)
                    queued = await self._scalar(conn, _QUEUED, key)
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
                        _ENQUEUE,
                        {
                            **key,
                            "task_id": request.task_id,
                            "tenant": request.tenant,
                            "priority": request.priority,
                        },
                    )
                outcome.granted = await self._dispatch(conn, key)
                state = await (await conn.execute(_TICKET, (request.task_id,))).fetchone()
                running = (await self._locked(conn, key))[0]
                if state is not None and state[2] == "running":
                    outcome.granted = [t for t in outcome.granted if t != request.task_id]
                    await conn.execute(_WOKEN, (request.task_id,))  # it hears it from us
                    outcome.decision = AdmissionDecision(outcome="admitted", running=running)
                else:
                    position = await self._scalar(conn, _POSITION, {"task_id": request.task_id})
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
        row = await (await conn.execute(_FAST_CLAIM, params)).fetchone()
        return int(row[0]) if row is not None else None

    async def release(self, task_id: str) -> Admission:
        """Give back the task's slot (or its place in line); admit who is next."""
        async with self.pool.connection() as conn, conn.transaction():
            ticket = await (await conn.execute(_TICKET, (task_id,))).fetchone()
            if ticket is None:
                return Admission()
            key = {"task_type": ticket[0], "key": ticket[1]}
            await self._locked(conn, key)  # the key first, as every claim does
            deleted = await (await conn.execute(_DELETE_TICKET, (task_id,))).fetchone()
            if deleted is not None and deleted[0] == "running":
                await conn.execute(_COUNT, {**key, "delta": -1, "vtime": 0.0})
            return Admission(granted=await self._dispatch(conn, key))

    async def dispatch(self, task_type: str, concurrency_key: str) -> list[str]:
        """Admit waiters into the key's free slots (the keeper's cure for a stuck key)."""
        key = {"task_type": task_type, "key": concurrency_key}
        async with self.pool.connection() as conn, conn.transaction():
            return await self._dispatch(conn, key)

    async def _dispatch(self, conn: AsyncConnection, key: dict[str, str]) -> list[str]:
        granted: list[str] = []
        running, limit, vtime = await self._locked(conn, key)
        while running < limit:
            heads = await (await conn.execute(_HEADS, key)).fetchall()
            if not heads:
                break
            # Start-time fair queueing: a tenant's next grant starts where its last one
            # finished (or now, if it was idle) and lasts 1 / weight; earliest start wins.
            best = min(heads, key=lambda h: (max(float(h[3]), vtime), h[2]))
            tenant, task_id = str(best[0]), str(best[1])
            start = max(float(best[3]), vtime)
            await conn.execute(_GRANT, (task_id,))
            vfinish = start + 1.0 / self.weight(tenant)
            await conn.execute(_SERVED, {**key, "tenant": tenant, "vfinish": vfinish})
            await conn.execute(_COUNT, {**key, "delta": 1, "vtime": start})
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
        dropped = [str(r[0]) for r in await (await conn.execute(_DROP_WAITERS, key)).fetchall()]
        active = await self._scalar(conn, _ACTIVE_HOLDERS, key)
        excess = active + 1 - limit
        stopped: list[str] = []
        if excess > 0:
            rows = await (await conn.execute(_PREEMPT, {**key, "n": excess})).fetchall()
            stopped = [str(r[0]) for r in rows]
        return [(task_id, reason) for task_id in [*dropped, *stopped]]

    @staticmethod
    async def _locked(conn: AsyncConnection, key: dict[str, str]) -> tuple[int, int, float]:
        row = await (await conn.execute(_LOCK_KEY, key)).fetchone()
        if row is None:
            raise LookupError(f"no admission key {key}")
        return int(row[0]), int(row[1]), float(row[2])

    @staticmethod
    async def _scalar(conn: AsyncConnection, statement: str, params: dict[str, str]) -> int:
        row = await (await conn.execute(statement, params)).fetchone()
        return int(row[0]) if row is not None else 0
