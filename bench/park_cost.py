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
from store.admission import AdmissionStore
from store.admission_park import ParkedStart, park


def _request(key: str) -> AdmissionRequest:
    return AdmissionRequest(
        task_id=str(uuid.uuid4()), task_type="bench", concurrency_key=key, tenant="t", limit=1
    )


async def _line(ctx: BenchContext, length: int) -> dict[str, float]:
    key = f"parks-{uuid.uuid4().hex[:6]}"
    await AdmissionStore(ctx.pool, {}).acquire(_request(key))  # the one slot: held
    requests = [_request(key) for _ in range(length)]
    gate = asyncio.Semaphore(STARTERS)

    async def one(request: AdmissionRequest) -> None:
        start = ParkedStart(
            input={"task_id": request.task_id, "input": {"steps": 1}},
            request_hash="bench",
            request_nonce=request.task_id,
        )
        async with gate:
            if await park(ctx.pool, request, start) is None:
                raise RuntimeError("a park of a full key was not parked")

    async def all_parks() -> None:
        await asyncio.gather(*(one(r) for r in requests))

    return {"parks": length, **await cost_per(ctx, all_parks(), length, "park")}


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
