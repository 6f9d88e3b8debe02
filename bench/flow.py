"""Part `flow`: what concurrency keys and fairness cost and what they buy (issue 24).

An in-process worker (`build_worker`, with the admission activities) on a task queue
of its own per variant; tasks started as `TaskClient` starts them (same input,
search attributes and, where the variant says so, Temporal `Priority` with the
tenant as fairness key). `demo.pipeline` of one step of `flow_step_seconds`.

- `fairness`: a noisy tenant submits `flow_noisy` tasks as fast as the server takes
  them; once half are in, a quiet tenant sends `flow_quiet`, one every 50 ms. The
  quiet tenant's time to first step (its start request → its `task.step.started.v1`)
  is compared with an idle system's (the quiet tenant alone), in three variants:
  `no_fairness` (no Priority on start: the queue before this change), `fairness`
  (fairness key = tenant: this change's default) and `fairness_limit` (also a
  concurrency limit of `flow_limit` per tenant key, sampled every 100 ms: the most
  tasks of one key ever holding a slot). Each variant stops when every quiet task
  has started its first step; the noisy backlog is left behind on its queue.
- `overhead`: `flow_overhead_tasks` tasks, `flow_overhead_concurrency` at a time,
  without a limit and with one too high to queue (the admission path runs, never
  waits), alternating, `flow_overhead_rounds` rounds each: bench-process and
  Postgres CPU per task, time to first step. And the claim alone: `store.acquire` +
  `store.release` one after another, wall and client CPU per pair.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from temporalio.common import Priority

from activities.admission import AdmissionActivities, Waker
from activities.recorder import EventRecorder
from bench import flow_tenants, park_cost
from bench.context import BenchContext, cost_per, cpu_delta
from bench.quiet_segments import render_segments
from bench.stats import median, percentile
from schemas.admission import AdmissionRequest
from schemas.workflow import (
    TASK_WORKFLOW,
    TaskWorkflowInput,
    start_search_attributes,
    workflow_id_for,
)
from store import EventStore, Outbox
from store.admission import AdmissionStore
from temporal.tasks import start_priority
from worker.temporal_worker import build_worker

_FIRST_STEPS = """
SELECT task_id, min(recorded_at) FROM events
WHERE task_id = ANY(%s) AND event_type = 'task.step.started.v1' GROUP BY task_id
"""
_MOST_HELD = """
SELECT coalesce(max(running), 0) FROM admission_keys WHERE concurrency_key = ANY(%s)
"""
STARTERS = 32  # start requests in flight at once


class Run:
    """One variant's worker, its tasks and when each was asked to start."""

    def __init__(
        self, ctx: BenchContext, *, fairness: bool, limit: int | None, slots: int | None = None
    ) -> None:
        self.ctx, self.fairness, self.limit, self.slots = ctx, fairness, limit, slots
        self.queue = f"flow-{uuid.uuid4().hex[:8]}"
        self.submitted: dict[str, float] = {}
        self.tenants: dict[str, str] = {}  # tenant name in the results → unique tenant

    def tenant(self, name: str) -> str:
        return self.tenants.setdefault(name, f"{name}-{uuid.uuid4().hex[:6]}")

    async def start(self, tenant: str, seconds: float) -> str:
        task_id = str(uuid.uuid4())
        request = TaskWorkflowInput(
            task_id=task_id,
            task_type="demo.pipeline",
            input={"steps": 1, "step_seconds": seconds},
            owner=tenant,
            concurrency_key=tenant if self.limit else None,
            concurrency_limit=self.limit,
        )
        self.submitted[task_id] = time.time()
        await self.ctx.client.start_workflow(
            TASK_WORKFLOW,
            request,
            id=workflow_id_for(task_id),
            task_queue=self.queue,
            search_attributes=start_search_attributes("demo.pipeline"),
            priority=start_priority(request, {}) if self.fairness else Priority.default,
        )
        return task_id

    async def first_steps(self, ids: list[str]) -> dict[str, float]:
        async with self.ctx.pool.connection() as conn:
            rows = await (await conn.execute(_FIRST_STEPS, (ids,))).fetchall()
        return {str(t): at.timestamp() - self.submitted[str(t)] for t, at in rows}


@contextlib.asynccontextmanager
async def _worker(ctx: BenchContext, run: Run) -> AsyncIterator[None]:
    """An in-process worker; its last marks are written before the bench's pool closes
    (else they fail, and the relay of a later part publishes those events again)."""
    store = AdmissionStore(ctx.pool, {})
    recorder = EventRecorder(EventStore(ctx.pool), Outbox(ctx.pool), ctx.broker)
    admission = AdmissionActivities(store, Waker(ctx.client, store))
    async with build_worker(
        ctx.client, recorder, task_queue=run.queue, admission=admission, task_slots=run.slots
    ):
        yield
    await recorder.flush_marks()


async def _noisy_and_quiet(ctx: BenchContext, run: Run, noisy: int) -> dict[str, Any]:
    sizes = ctx.sizes
    loud, calm = run.tenant("noisy"), run.tenant("quiet")
    gate = asyncio.Semaphore(STARTERS)
    half = asyncio.Event()
    noisy_ids: list[str] = []

    async def one_noisy() -> None:
        async with gate:
            noisy_ids.append(await run.start(loud, sizes.flow_step_seconds))
            if len(noisy_ids) >= noisy // 2:
                half.set()

    most_held, samples = 0, 0
    async with _worker(ctx, run):
        flood = asyncio.gather(*(one_noisy() for _ in range(noisy)))
        if noisy:
            await half.wait()
        quiet_ids = []
        for _ in range(sizes.flow_quiet):
            quiet_ids.append(await run.start(calm, sizes.quiet_step_seconds))
            await asyncio.sleep(0.05)
        deadline = time.monotonic() + sizes.flow_deadline_seconds
        while True:
            if run.limit:
                async with ctx.pool.connection() as conn:
                    row = await (await conn.execute(_MOST_HELD, ([loud, calm],))).fetchone()
                most_held, samples = max(most_held, int(row[0]) if row else 0), samples + 1
            started = await run.first_steps(quiet_ids)
            if len(started) == len(quiet_ids) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        await flood
        noisy_started = len(await run.first_steps(noisy_ids))
    waits = list(started.values())
    result: dict[str, Any] = {
        "quiet_started": len(started),
        "quiet_sent": len(quiet_ids),
        "quiet_first_step_p50_ms": round(percentile(waits, 50) * 1000, 1),
        "quiet_first_step_p99_ms": round(percentile(waits, 99) * 1000, 1),
        "noisy_sent": len(noisy_ids),
        "noisy_started_by_then": noisy_started,
    }
    if run.limit:
        result.update(limit=run.limit, most_held_per_key=most_held, key_samples=samples)
    return result


async def _overhead_round(ctx: BenchContext, limit: int | None) -> dict[str, float]:
    sizes = ctx.sizes
    run = Run(ctx, fairness=True, limit=limit)
    tenant = run.tenant("overhead")
    gate = asyncio.Semaphore(sizes.flow_overhead_concurrency)

    async def one() -> str:
        async with gate:
            task_id = await run.start(tenant, 0.0)
            handle = ctx.client.get_workflow_handle(workflow_id_for(task_id))
            await handle.result()
            return task_id

    async with _worker(ctx, run):
        before = ctx.cpu_snapshot()
        ids = await asyncio.gather(*(one() for _ in range(sizes.flow_overhead_tasks)))
        spent = cpu_delta(before, ctx.cpu_snapshot())
    waits = list((await run.first_steps(list(ids))).values())
    n = len(ids)
    return {
        "bench_cpu_us_per_task": spent["bench_process"] / n * 1e6,
        "postgres_cpu_us_per_task": spent.get("postgres", float("nan")) / n * 1e6,
        "first_step_p50_ms": percentile(waits, 50) * 1000,
        "first_step_p99_ms": percentile(waits, 99) * 1000,
    }


async def _claims(ctx: BenchContext) -> dict[str, float]:
    """The claim alone: acquire + release of a free slot, one pair after another."""
    store, pairs = AdmissionStore(ctx.pool, {}), ctx.sizes.flow_claims
    key = f"claims-{uuid.uuid4().hex[:6]}"
    requests = [
        AdmissionRequest(
            task_id=str(uuid.uuid4()), task_type="bench", concurrency_key=key, tenant="t", limit=1
        )
        for _ in range(pairs)
    ]

    async def pairs_in_turn() -> None:
        for request in requests:
            await store.acquire(request)
            await store.release(request.task_id)

    return {"pairs": pairs, **await cost_per(ctx, pairs_in_turn(), pairs, "pair")}


async def run(ctx: BenchContext) -> dict[str, Any]:
    sizes = ctx.sizes
    result: dict[str, Any] = {"claims": await _claims(ctx)} if sizes.flow_claims else {}
    if sizes.flow_park_lines:
        result["parks"] = await park_cost.measure(ctx)
    rounds: dict[str, list[dict[str, float]]] = {"no_limit": [], "limit": []}
    for _ in range(sizes.flow_overhead_rounds):
        rounds["no_limit"].append(await _overhead_round(ctx, None))
        rounds["limit"].append(await _overhead_round(ctx, 1_000_000))
    if sizes.flow_overhead_rounds:
        result["overhead"] = {
            name: {k: round(median([r[k] for r in runs]), 1) for k in runs[0]}
            for name, runs in rounds.items()
        }
        result["overhead"]["first_step_p50_added_ms"] = round(
            result["overhead"]["limit"]["first_step_p50_ms"]
            - result["overhead"]["no_limit"]["first_step_p50_ms"],
            1,
        )
    slots = sizes.flow_worker_slots
    variants = {
        "idle": (False, None, 0, None),  # fairness does not matter alone
        "no_fairness": (False, None, sizes.flow_noisy, None),
        "fairness": (True, None, sizes.flow_noisy, None),
        "fairness_limit": (True, sizes.flow_limit, sizes.flow_noisy, None),
        "fairness_slots": (True, None, sizes.flow_noisy, slots),
        "fairness_limit_slots": (True, sizes.flow_limit, sizes.flow_noisy, slots),
    }
    chosen = [v for v in sizes.flow_variants.split(",") if v]
    in_process = [v for v in chosen if v in variants] if chosen else list(variants)
    fairness: dict[str, Any] = {}
    for name, (fair, limit, noisy, worker_slots) in variants.items():
        if not in_process or (name not in in_process and name != "idle"):
            continue  # idle is every in-process ratio's baseline
        began = time.monotonic()
        run_ = Run(ctx, fairness=fair, limit=limit, slots=worker_slots)
        fairness[name] = await _noisy_and_quiet(ctx, run_, noisy)
        fairness[name]["seconds"] = round(time.monotonic() - began, 1)
        if worker_slots:
            fairness[name]["worker_slots"] = worker_slots
    if fairness:
        idle = fairness["idle"]["quiet_first_step_p99_ms"]
        for name in [v for v in fairness if v != "idle"]:
            ratio = fairness[name]["quiet_first_step_p99_ms"] / idle
            fairness[name]["p99_to_idle"] = round(ratio, 2)
    wanted = [v for v in chosen if v.startswith("api_")]
    if wanted or not chosen:  # the deployment topology (bench/flow_tenants.py)
        fairness.update(await flow_tenants.run(ctx, wanted))
    result["fairness"] = fairness
    result["measured_at"] = datetime.now(UTC).isoformat()
    return result


def render(result: dict[str, Any]) -> list[str]:
    """The part's figures as lines under the bench's table."""
    lines = ["", "flow control (issue 24):"]
    claims = result.get("claims")
    if claims:
        lines.append(
            f"  claim+release of a free slot: {claims['wall_us_per_pair']} us wall,"
            f" {claims['client_cpu_us_per_pair']} us client CPU,"
            f" {claims['postgres_cpu_us_per_pair']} us Postgres CPU per pair"
        )
    if "parks" in result:
        lines += park_cost.render(result["parks"])
    for name, figures in result.get("overhead", {}).items():
        lines.append(f"  overhead {name}: {figures}")
    for name, figures in result["fairness"].items():
        lines.append(f"  {name}: {figures}")
        if figures.get("quiet_segments_ms"):
            lines.append(f"    {render_segments(figures['quiet_segments_ms'])}")
    return lines
