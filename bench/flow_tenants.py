"""Part `flow`, the deployment topology: a noisy and a quiet tenant through a real API.

The in-process variants of bench/flow.py start workflows from the bench process,
which also runs the worker: the quiet tenant's start requests and first workflow
tasks queue behind the noisy ones in one Python event loop. Here the processes
are the ones `make up` runs: one `python -m worker` (its workflow-task, activity and
local-activity slots from `TASKPLANE_WORKER_TASK_SLOTS`) and one `python -m api`,
each its own process; the bench only sends `POST /tasks` — the noisy tenant from one
HTTP client (`STARTERS` requests in flight), the quiet tenant from another, each
with its own API key, so tenant, fairness key, admission and rate paths are the
production ones. Time to first step: the quiet tenant's `POST` sent → its first
`task.step.started.v1` (the store's `recorded_at`).

The noisy tenant's open flood comes from a process of its own on raw sockets
(bench/flood.py), as another tenant's client would: not from the event loop that
stamps the quiet tenant's requests, nor at httpx's CPU cost. Held outside (a closed
loop: a new task when one ends) it stays in the bench, ten requests a second or so.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from bench.context import BenchContext
from bench.flood import FloodOutcome, run_flood
from bench.flow_probes import create_task, first_steps, timeline, warm_up
from bench.machine import busy_share, cpu_busy_seconds
from bench.procs import ChildProcess, tree_cpu_seconds
from bench.quiet_segments import quiet_segments
from bench.stats import percentile
from schemas.workflow import workflow_id_for

STARTERS = 32  # the noisy tenant's creations in flight at once
_MOST_HELD = """
SELECT coalesce(max(running), 0) FROM admission_keys WHERE concurrency_key = ANY(%s)
"""


@dataclass(frozen=True)
class Variant:
    noisy: int
    limit: int | None = None
    slots: int | None = None
    # The noisy tenant keeps only `limit` tasks open (a new one when one ends): what
    # the worker and Temporal would see if over-limit tasks waited outside them.
    held_outside: bool = False
    # Over-limit tasks parked by the API (store/admission_park.py, the product's default
    # with a limit); False: `TASKPLANE_ADMISSION_PARK_SECONDS=0`, every queued task's
    # workflow started at once (how a limit worked before parking).
    parked: bool = False
    # The API's per-tenant creation rate as shipped (`TASKPLANE_LIMIT_TASK_CREATE_*`,
    # 50/s, burst 200, per API process): the noisy tenant's excess is answered 429 and
    # its client retries after `Retry-After`. False: lifted, so the flood comes as fast
    # as the API can take it.
    default_creation_rate: bool = False


def variants(ctx: BenchContext) -> dict[str, Variant]:
    sizes = ctx.sizes
    slots, limit = sizes.flow_worker_slots, sizes.flow_limit
    return {
        "api_idle": Variant(0, slots=slots),  # every api_* ratio's baseline
        "api_fairness": Variant(sizes.flow_noisy),  # the SDK's 100 slots
        "api_fairness_slots": Variant(sizes.flow_noisy, slots=slots),
        "api_fairness_limit_slots": Variant(sizes.flow_noisy, limit=limit, slots=slots),
        # The lever built: over-limit tasks parked, the noisy tenant sending all it has.
        "api_parked_limit": Variant(sizes.flow_noisy, limit=limit, parked=True),
        "api_parked_limit_slots": Variant(sizes.flow_noisy, limit=limit, slots=slots, parked=True),
        # The same with the creation rate every tenant gets by default.
        "api_parked_limit_slots_default_rate": Variant(
            sizes.flow_noisy, limit=limit, slots=slots, parked=True, default_creation_rate=True
        ),
        "api_held_outside_limit": Variant(sizes.flow_noisy, limit=limit, held_outside=True),
        "api_held_outside_limit_slots": Variant(
            sizes.flow_noisy, limit=limit, slots=slots, held_outside=True
        ),
    }


@contextlib.asynccontextmanager
async def _stack(
    ctx: BenchContext, variant: Variant, keys: str
) -> AsyncIterator[tuple[ChildProcess, ChildProcess]]:
    common = {"log_level": "WARNING", "api_keys": keys}
    if not variant.default_creation_rate:
        # The flood as fast as the API takes it: the per-tenant creation bucket (50/s by
        # default, which an idle machine's API exceeds) would refuse most of it with 429s.
        common.update(limit_task_create_per_second="1000", limit_task_create_burst="5000")
    if variant.limit:
        common["concurrency_limit"] = str(variant.limit)
        if not variant.parked:
            common["admission_park_seconds"] = "0"
    worker_settings = {**common, "retention_enabled": "false"}
    if variant.slots:
        worker_settings["worker_task_slots"] = str(variant.slots)
    worker = ChildProcess("worker", ctx.endpoints, ctx.log_dir, **worker_settings)
    api = ChildProcess("api", ctx.endpoints, ctx.log_dir, task_queue=worker.task_queue, **common)
    for child in (worker, api):
        # As deployed (the image's `pip install` compiles bytecode): the workflow sandbox
        # re-imports the workflow modules for every new run, from source when no .pyc
        # may be written (PYTHONDONTWRITEBYTECODE=1 here): 12 % of the worker's samples.
        child.env.pop("PYTHONDONTWRITEBYTECODE", None)
        child.start()
    try:
        await asyncio.to_thread(api.wait_ready)
        await asyncio.sleep(3)  # the worker's pollers are up well before this
        yield worker, api
    finally:
        for child in (api, worker):
            child.stop()


async def measure(ctx: BenchContext, variant: Variant) -> dict[str, Any]:
    """One variant on a fresh worker + API pair; stops once every quiet task has stepped."""
    sizes, tag = ctx.sizes, uuid.uuid4().hex[:6]
    loud, calm, warm = f"noisy-{tag}", f"quiet-{tag}", f"warm-{tag}"
    keys = f"{loud}:k-{loud},{calm}:k-{calm},{warm}:k-{warm}"
    noisy_sent: dict[str, float] = {}
    quiet_sent: dict[str, float] = {}
    quiet_answered: list[float] = []
    noisy_answered: list[float] = []
    half = asyncio.Event()
    most_held = samples = 0
    async with _stack(ctx, variant, keys) as (worker, api):
        await warm_up(ctx, api.base_url, f"k-{warm}", worker, api)
        cpu_before = {"worker": tree_cpu_seconds(worker.pid), "api": tree_cpu_seconds(api.pid)}
        began = time.monotonic()
        limits = httpx.Limits(max_connections=STARTERS)
        async with (
            httpx.AsyncClient(
                base_url=api.base_url,
                headers={"Authorization": f"Bearer k-{loud}"},
                timeout=120,
                limits=limits,
            ) as noisy_http,
            httpx.AsyncClient(
                base_url=api.base_url, headers={"Authorization": f"Bearer k-{calm}"}, timeout=120
            ) as quiet_http,
        ):
            held = variant.limit if variant.held_outside and variant.limit else 0
            gate = asyncio.Semaphore(held or STARTERS)
            # Held outside, the noisy tenant is in its steady state after a few rounds.
            quiet_after = min(variant.noisy // 2, 5 * held) if held else variant.noisy // 2

            async def one_noisy() -> None:
                async with gate:
                    task_id = await create_task(
                        noisy_http, sizes.flow_step_seconds, noisy_sent, noisy_answered
                    )
                    if variant.held_outside:  # the slot is the task's whole run
                        await ctx.client.get_workflow_handle(workflow_id_for(task_id)).result()
                if len(noisy_sent) >= quiet_after:
                    half.set()

            flood: asyncio.Future[Any]
            if variant.noisy and not held:
                flood = asyncio.ensure_future(
                    run_flood(
                        api.base_url,
                        f"k-{loud}",
                        variant.noisy,
                        STARTERS,
                        sizes.flow_step_seconds,
                        noisy_sent,
                        noisy_answered,
                        (quiet_after, half),
                    )
                )
            else:
                flood = asyncio.gather(*(one_noisy() for _ in range(variant.noisy)))
            if variant.noisy:
                await half.wait()
            busy_before = cpu_busy_seconds()
            for _ in range(sizes.flow_quiet):
                await create_task(quiet_http, sizes.quiet_step_seconds, quiet_sent, quiet_answered)
                await asyncio.sleep(sizes.flow_quiet_gap_seconds)
            deadline = time.monotonic() + sizes.flow_deadline_seconds
            while True:
                if variant.limit:
                    async with ctx.pool.connection() as conn:
                        cursor = await conn.execute(_MOST_HELD, ([loud, calm],))
                        row = await cursor.fetchone()
                    most_held, samples = max(most_held, int(row[0]) if row else 0), samples + 1
                started = await first_steps(ctx, quiet_sent)
                if len(started) == len(quiet_sent) or time.monotonic() > deadline:
                    busy = busy_share(busy_before, cpu_busy_seconds())
                    break
                await asyncio.sleep(0.1)
            if held:  # the rest of the closed loop would only take time
                flood.cancel()
            flood_cpu: float | None = None
            refused: int | None = None
            with contextlib.suppress(asyncio.CancelledError):
                outcome = await flood
                if isinstance(outcome, FloodOutcome):
                    flood_cpu, refused = outcome
        cpu = {
            "worker_cpu_s": round(tree_cpu_seconds(worker.pid) - cpu_before["worker"], 1),
            "api_cpu_s": round(tree_cpu_seconds(api.pid) - cpu_before["api"], 1),
            # The noisy client's own CPU, on the same two cores (its own process).
            "flood_client_cpu_s": None if flood_cpu is None else round(flood_cpu, 1),
        }
        noisy_started = len(await first_steps(ctx, noisy_sent)) if noisy_sent else 0
        created_at = await first_steps(ctx, quiet_sent, "task.created.v1")
        created = list(created_at.values())
        if started:
            slowest = max(started, key=lambda t: started[t])
            history = await timeline(ctx, slowest, quiet_sent[slowest])
            # The quiet creations are sequential: answers come in the order of `quiet_sent`.
            answers = dict(zip(quiet_sent, quiet_answered, strict=True))
            segments = await quiet_segments(ctx.client, quiet_sent, answers, started, created_at)
    waits = list(started.values())
    result: dict[str, Any] = {
        "quiet_started": len(started),
        "quiet_sent": len(quiet_sent),
        "quiet_first_step_p50_ms": round(percentile(waits, 50) * 1000, 1),
        "quiet_first_step_p99_ms": round(percentile(waits, 99) * 1000, 1),
        # Where the quiet tenant's time goes: the API's answer, its first event.
        "quiet_post_p99_ms": round(percentile(quiet_answered, 99) * 1000, 1),
        "quiet_created_p99_ms": round(percentile(created, 99) * 1000, 1),
        # How busy the two cores were while the quiet tenant's tasks went through.
        "busy_while_quiet": busy,
        "noisy_sent": len(noisy_sent),
        "noisy_refused": refused,
        "noisy_post_p50_ms": round(percentile(noisy_answered, 50) * 1000, 1)
        if noisy_answered
        else 0,
        "noisy_started_by_then": noisy_started,
        "seconds": round(time.monotonic() - began, 1),
        "worker_slots": variant.slots or 100,
        **cpu,
        "slowest_quiet_history_ms": history if started else [],
        "quiet_segments_ms": segments if started else {},
    }
    if variant.limit:
        result.update(limit=variant.limit, most_held_per_key=most_held, key_samples=samples)
        result["parked"] = variant.parked
    return result


async def run(ctx: BenchContext, chosen: list[str]) -> dict[str, Any]:
    """The api_* variants named in `chosen` (all when empty), with api_idle as baseline."""
    results: dict[str, Any] = {}
    for name, variant in variants(ctx).items():
        if chosen and name not in chosen and name != "api_idle":
            continue
        results[name] = await measure(ctx, variant)
    idle = results["api_idle"]["quiet_first_step_p99_ms"]
    for name in [v for v in results if v != "api_idle"]:
        results[name]["p99_to_idle"] = round(results[name]["quiet_first_step_p99_ms"] / idle, 2)
    return results
