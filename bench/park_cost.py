"""What parking a task costs as its key's line grows (store/admission_park.py).

`POST /tasks` of a full key parks the task: one call of `taskplane_park` (migration
0023). The flood that parks thousands of one tenant's tasks pays it per task, so the
figure that matters is whether it stays flat as the line grows: lines of each length
in `flow_park_lines` are filled from empty on a fresh key, `STARTERS` parks at once (as
bench/flow_tenants.py's flood sends them), and the cost per park is reported with
the ratio of the longest line's Postgres CPU per park to the shortest's (1: flat;
counting the line's rows, as before session 12, made it grow with the line).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from bench.context import BenchContext, cost_per
from bench.flow_tenants import STARTERS
from schemas.admission import AdmissionRequest
from schemas.workflow import TaskWorkflowInput
from store.admission import AdmissionStore
from store.admission_park import ParkedStart, park

TASK_TYPE = "bench"
# What a line leaves, removed once measured: a worker's admission keeper sharing the
# store would find the held slot without a run, free it, and start the parked tasks.
_FORGET = (
    "DELETE FROM admission_tickets WHERE task_type = %(type)s AND concurrency_key = %(key)s",
    "DELETE FROM admission_line WHERE task_type = %(type)s AND concurrency_key = %(key)s",
    "DELETE FROM admission_keys WHERE task_type = %(type)s AND concurrency_key = %(key)s",
    "DELETE FROM tasks WHERE task_id = ANY(%(ids)s)",
)


def _request(key: str) -> AdmissionRequest:
    return AdmissionRequest(
        task_id=str(uuid.uuid4()), task_type=TASK_TYPE, concurrency_key=key, tenant="t", limit=1
    )


def _start(request: AdmissionRequest) -> ParkedStart:
    """What the API parks (api/admission.py): the run's whole input, as it would start."""
    body = TaskWorkflowInput(
        task_id=request.task_id,
        task_type=request.task_type,
        input={"steps": 1},
        owner=request.tenant,
        concurrency_key=request.concurrency_key,
        concurrency_limit=request.limit,
    )
    return ParkedStart(
        input=body.model_dump(mode="json"), request_hash="bench", request_nonce=request.task_id
    )


async def _line(ctx: BenchContext, length: int) -> dict[str, float]:
    key = f"parks-{uuid.uuid4().hex[:6]}"
    holder = _request(key)
    await AdmissionStore(ctx.pool, {}).acquire(holder)  # the one slot: held
    requests = [_request(key) for _ in range(length)]
    gate = asyncio.Semaphore(STARTERS)

    async def one(request: AdmissionRequest) -> None:
        async with gate:
            if await park(ctx.pool, request, _start(request)) is None:
                raise RuntimeError("a park of a full key was not parked")

    async def all_parks() -> None:
        await asyncio.gather(*(one(r) for r in requests))

    try:
        return {"parks": length, **await cost_per(ctx, all_parks(), length, "park")}
    finally:
        params = {"type": TASK_TYPE, "key": key, "ids": [r.task_id for r in [holder, *requests]]}
        async with ctx.pool.connection() as conn, conn.transaction():
            for statement in _FORGET:
                await conn.execute(statement, params)


async def measure(ctx: BenchContext) -> dict[str, Any]:
    lengths = sorted(int(n) for n in ctx.sizes.flow_park_lines.split(",") if n)
    lines = [await _line(ctx, n) for n in lengths]
    shortest = lines[0]["postgres_cpu_us_per_park"]
    longest = lines[-1]["postgres_cpu_us_per_park"]
    # None where Postgres is not the bench's own server (its CPU is not seen: NaN).
    ratio = round(longest / shortest, 2) if shortest > 0 else None
    return {"lines": lines, "postgres_longest_to_shortest": ratio}


def render(result: dict[str, Any]) -> list[str]:
    lines = [
        f"  park into a line of {line['parks']}: {line['wall_us_per_park']} us wall,"
        f" {line['client_cpu_us_per_park']} us client CPU,"
        f" {line['postgres_cpu_us_per_park']} us Postgres CPU per park"
        for line in result["lines"]
    ]
    ratio = result["postgres_longest_to_shortest"]
    lines.append(f"  Postgres CPU per park, longest line / shortest: {ratio}")
    return lines
