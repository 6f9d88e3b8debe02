"""Part 8: shared start rates (api/rate_limits.py) — accuracy and the cost of one admission.

- Accuracy: two `StartRates` (two Redis clients, as two API processes have) each run
  two paced drivers that ask to start tasks for one tenant at `rate_offered` a second
  in all, against a limit of `rate_per_second` with `rate_burst`, for
  `rate_window_seconds` (60 in a full run; the quick run's 10 s is said in its
  result). Admitted is compared with rate x window + burst (the most GCRA may let
  through), and every sliding 1-s window (on Redis's clock, the one
  the limit keeps) is checked against rate + burst.
- Overhead: `StartRates.admit` called back to back, wall and CPU (this thread's
  `thread_time`) per call with one rule (a tenant rule), with three (tenant, key and
  type, each per second and per minute: six GCRA keys), against no limit configured
  (the code path without a Redis round trip) and a bare Redis `PING` (the floor of any
  round trip).
- Debounce: `debounce_creations` creations (`debounce_concurrency` at a time) of one
  key go to one window (`DebounceWorkflow`, update-with-start, a worker in this
  process); how many tasks they made (1 is right), what the window counted, the
  latency of one creation, and how long after the last creation the task started
  (the period, `debounce_period_seconds`, plus Temporal's timer and start).
"""

from __future__ import annotations

import asyncio
import bisect
import time
import uuid
from datetime import timedelta
from typing import Any

from redis.asyncio import Redis

from activities.recorder import EventRecorder
from api.problems import ProblemError
from api.rate_limits import StartRates
from bench.context import BenchContext
from bench.stats import median, summary_ms
from schemas.debounce import (
    DebounceCreation,
    DebounceResult,
    DebounceStart,
    debounce_workflow_id,
)
from schemas.workflow import TaskWorkflowResult, workflow_id_for
from settings.rate_limits import Rate, RateLimitSettings, TypeRates
from store import EventStore, Outbox
from temporal.debounce import DebounceClient
from worker.temporal_worker import build_worker

DRIVERS_PER_PROCESS = 2


async def _drive(rates: StartRates, tenant: str, interval: float, stop: float) -> list[float]:
    """Ask every `interval` s until `stop`; Redis's times (s) of the admitted asks."""
    admitted: list[float] = []
    next_at = time.monotonic()
    while next_at < stop:
        try:
            admission = await rates.admit(tenant, None, "demo.pipeline")
            admitted.append(admission.decided_at_ms / 1000)
        except ProblemError:
            pass
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    return admitted


def _max_in_window(times: list[float], width: float) -> int:
    best = 0
    for index, at in enumerate(times):
        best = max(best, bisect.bisect_right(times, at + width) - index)
    return best


async def _accuracy(ctx: BenchContext) -> dict[str, Any]:
    sizes = ctx.sizes
    config = RateLimitSettings(
        tenant=Rate(per_second=sizes.rate_per_second, burst=sizes.rate_burst)
    )
    url = ctx.endpoints.redis_url
    processes = [StartRates(config, url, timeout=5) for _ in range(2)]
    tenant = f"bench-{uuid.uuid4().hex[:8]}"
    drivers = DRIVERS_PER_PROCESS * len(processes)
    interval = drivers / sizes.rate_offered
    began = time.monotonic()
    stop = began + sizes.rate_window_seconds
    try:
        runs = await asyncio.gather(
            *(
                _drive(rates, tenant, interval, stop)
                for rates in processes
                for _ in range(DRIVERS_PER_PROCESS)
            )
        )
    finally:
        for rates in processes:
            await rates.__aexit__(None, None, None)
    window = time.monotonic() - began
    admitted = sorted(at for run in runs for at in run)
    bound = sizes.rate_per_second * window + sizes.rate_burst
    one_second = _max_in_window(admitted, 1.0)
    return {
        "window_seconds": round(window, 2),
        "full_window": sizes.rate_window_seconds >= 60,
        "rate_per_second": sizes.rate_per_second,
        "burst": sizes.rate_burst,
        "offered_per_second": sizes.rate_offered,
        "api_processes": len(processes),
        "admitted": len(admitted),
        "bound": round(bound, 1),
        "admitted_over_bound": round(len(admitted) / bound, 4),
        "max_in_any_1s_window": one_second,
        "one_second_bound": sizes.rate_per_second + sizes.rate_burst,
    }


async def _per_call(calls: int, call: Any) -> dict[str, float]:
    for _ in range(20):  # warm: connection, script load
        await call()
    wall, cpu = time.perf_counter(), time.thread_time()
    for _ in range(calls):
        await call()
    return {
        "wall_us": round((time.perf_counter() - wall) / calls * 1e6, 1),
        "cpu_us": round((time.thread_time() - cpu) / calls * 1e6, 1),
    }


async def _overhead(ctx: BenchContext) -> dict[str, Any]:
    url = ctx.endpoints.redis_url
    huge = Rate(per_second=1_000_000, per_minute=60_000_000)
    variants = {
        "no limit": RateLimitSettings(),
        "tenant rule": RateLimitSettings(tenant=Rate(per_second=1_000_000)),
        "tenant+key+type (6 keys)": RateLimitSettings(
            tenant=huge, key=huge, types={"demo.pipeline": TypeRates(rate=huge)}
        ),
    }
    calls = ctx.sizes.rate_overhead_calls
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in [*variants, "redis PING"]}
    redis = Redis.from_url(url)
    try:
        for _ in range(ctx.sizes.rate_overhead_rounds):
            for name, config in variants.items():
                async with StartRates(config, url, timeout=5) as rates:
                    tenant = f"bench-{uuid.uuid4().hex[:8]}"
                    rounds[name].append(
                        await _per_call(
                            calls, lambda r=rates, t=tenant: r.admit(t, "k", "demo.pipeline")
                        )
                    )
            rounds["redis PING"].append(await _per_call(calls, redis.ping))
    finally:
        await redis.aclose()
    return {
        name: {
            "median_wall_us": median([r["wall_us"] for r in results]),
            "median_cpu_us": median([r["cpu_us"] for r in results]),
        }
        for name, results in rounds.items()
    }


async def _debounce(ctx: BenchContext) -> dict[str, Any]:
    sizes = ctx.sizes
    queue = f"bench-debounce-{uuid.uuid4().hex[:8]}"
    recorder = EventRecorder(EventStore(ctx.pool), Outbox(ctx.pool), ctx.broker)
    start = DebounceStart(
        tenant="bench",
        task_type="demo.pipeline",
        key=uuid.uuid4().hex,
        period_seconds=sizes.debounce_period_seconds,
    )
    latencies: list[float] = []
    task_ids: set[str] = set()
    gate = asyncio.Semaphore(sizes.debounce_concurrency)
    async with build_worker(ctx.client, recorder, task_queue=queue):
        debouncer = DebounceClient(ctx.client, task_queue=queue, rpc_timeout=timedelta(seconds=60))

        async def create(index: int) -> None:
            async with gate:
                began = time.perf_counter()
                answer = await debouncer.add(
                    start,
                    DebounceCreation(
                        task_id=str(uuid.uuid4()),
                        input={"steps": 1, "step_seconds": 0, "progress_ticks": index % 3},
                        request_hash=f"bench-{index}",
                        request_nonce=f"bench-{index}",
                    ),
                )
                latencies.append(time.perf_counter() - began)
                task_ids.add(answer.task_id)

        await asyncio.gather(*(create(i) for i in range(sizes.debounce_creations)))
        last = time.monotonic()
        window = ctx.client.get_workflow_handle(
            debounce_workflow_id(start.tenant, start.task_type, start.key),
            result_type=DebounceResult,
        )
        result = await window.result()
        task = ctx.client.get_workflow_handle(
            workflow_id_for(result.task_id), result_type=TaskWorkflowResult
        )
        description = await task.describe()
        await task.result()
    await recorder.flush_marks()  # before the bench's pool closes: see bench/flow.py
    started = description.start_time.timestamp() if description.start_time else 0.0
    lag = started - (time.time() - (time.monotonic() - last))
    return {
        "creations": sizes.debounce_creations,
        "concurrency": sizes.debounce_concurrency,
        "tasks": len(task_ids),
        "collapsed": result.collapsed,
        "period_seconds": sizes.debounce_period_seconds,
        "start_after_last_creation_s": round(lag, 3),
        "creation_latency": summary_ms(latencies),
    }


async def run(ctx: BenchContext) -> dict[str, Any]:
    return {
        "accuracy": await _accuracy(ctx),
        "overhead": await _overhead(ctx),
        "debounce": await _debounce(ctx),
    }


def render(result: dict[str, Any]) -> list[str]:
    acc = result["accuracy"]
    scope = "" if acc["full_window"] else " (quick run: a shorter window than the 60 s figure)"
    lines = [
        "",
        f"Rate limits: {acc['api_processes']} limiters sharing one tenant rule of"
        f" {acc['rate_per_second']}/s burst {acc['burst']}, offered {acc['offered_per_second']}/s"
        f" for {acc['window_seconds']} s{scope}",
        f"  admitted {acc['admitted']} of a bound of {acc['bound']} (rate x window + burst):"
        f" {acc['admitted_over_bound']:.1%}; most in any 1 s: {acc['max_in_any_1s_window']}"
        f" (bound {acc['one_second_bound']})",
        "  admission per creation (median of rounds):  wall us   CPU us",
    ]
    for name, figures in result["overhead"].items():
        lines.append(
            f"    {name:<28} {figures['median_wall_us']:>8.1f} {figures['median_cpu_us']:>8.1f}"
        )
    deb = result["debounce"]
    latency = deb["creation_latency"]
    lines.append(
        f"  debounce: {deb['creations']} creations ({deb['concurrency']} at a time) ->"
        f" {deb['tasks']} task(s), window counted {deb['collapsed']}; a creation p50"
        f" {latency['p50_ms']:.1f} ms p99 {latency['p99_ms']:.1f} ms; task started"
        f" {deb['start_after_last_creation_s']:.2f} s after the last (period"
        f" {deb['period_seconds']:g} s)"
    )
    return lines
