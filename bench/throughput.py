"""Part 1: task and event throughput of `demo.pipeline` against bare Temporal.

Every variant runs the same pipeline (5 steps, `step_seconds=0`, no progress
ticks) on a fresh in-process worker built like the production one, with C
workflows in flight at all times (closed loop); a run's rate is the number of
workflows completed inside a window after a warm-up, per second (the window is
fixed, but stays open until at least one workflow completed in it).
Variants run in interleaved rounds (the order rotates each round) and each
variant's ratio to bare Temporal is taken per round, against
the baseline run of the same round, then the median over rounds is reported:
the machine is shared and its noise moves whole rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.recorder import EventRecorder
from bench.context import BenchContext, cpu_delta
from bench.event_floor import FloorRecorder
from bench.failures import ActivityFailures
from bench.models import BenchPipelineInput
from bench.recorders import BatchingRecorder, NoIoRecorder
from bench.stats import median
from bench.worker import bench_worker
from schemas.workflow import TaskWorkflowInput, start_search_attributes, workflow_id_for
from settings import Settings
from store import EventStore, Outbox
from worker.runtime import WorkerRuntime

STEPS = 5
BASELINE = "bare_temporal"


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    workflow: str
    recorder: str  # "none" | "production" | "no_io" | "batched" | "floor"
    make_input: Callable[[str], Any]
    # Diagnostics take production's cost apart (part of a full run; skipped
    # by --quick unless named in `throughput_variants`).
    diagnostic: bool = False
    # Run in the production `WorkerRuntime`, with every loop `python -m worker` runs.
    worker_loops: bool = False
    # The workflow runner: None is production's (`TASKPLANE_WORKFLOW_SANDBOX`).
    sandboxed: bool | None = None


def _task_input(task_id: str) -> TaskWorkflowInput:
    return TaskWorkflowInput(
        task_id=task_id,
        task_type="demo.pipeline",
        input={"steps": STEPS, "step_seconds": 0, "progress_ticks": 0},
    )


def _bench_input(via: str, **flags: bool | str) -> Callable[[str], BenchPipelineInput]:
    def make(task_id: str) -> BenchPipelineInput:
        return BenchPipelineInput.model_validate(
            {"task_id": task_id, "steps": STEPS, "via": via, **flags}
        )

    return make


VARIANTS = (
    Variant(
        BASELINE,
        "bare Temporal: 5 no-op step activities, nothing recorded",
        "BenchBare",
        "none",
        _bench_input("local_activity"),
    ),
    Variant(
        "taskplane",
        "production: steps record their own events, task events by local activity",
        "TaskWorkflow",
        "production",
        _task_input,
    ),
    Variant(
        "taskplane_worker_loops",
        "production, plus the worker's relay, webhook dispatcher and other loops",
        "TaskWorkflow",
        "production",
        _task_input,
        worker_loops=True,
    ),
    Variant(
        "taskplane_batched",
        "production shape, group commit (one transaction per batch of queued events)",
        "TaskWorkflow",
        "batched",
        _task_input,
    ),
    Variant(
        "local_activity_per_event",
        "every event recorded by the workflow through a local activity",
        "BenchEmitEveryEvent",
        "production",
        _bench_input("local_activity"),
    ),
    Variant(
        "activity_per_event",
        "every event recorded by the workflow through a regular activity",
        "BenchEmitEveryEvent",
        "production",
        _bench_input("activity"),
    ),
    Variant(
        "taskplane_no_io",
        "production workflow and activities, recorder without Postgres/Redis",
        "TaskWorkflow",
        "no_io",
        _task_input,
    ),
    Variant(
        "taskplane_floor",
        "production workflow and activities, each event at the contract's floor"
        " (bench/event_floor.py: one statement, one EVALSHA, no rules)",
        "TaskWorkflow",
        "floor",
        _task_input,
        diagnostic=True,
    ),
    Variant(
        "bare_temporal_sandboxed",
        "bare Temporal in Temporal's sandbox (the SDK's default runner)",
        "BenchBare",
        "none",
        _bench_input("local_activity"),
        diagnostic=True,
        sandboxed=True,
    ),
    Variant(
        "taskplane_sandboxed",
        "production, its workflow in Temporal's sandbox (TASKPLANE_WORKFLOW_SANDBOX=true)",
        "TaskWorkflow",
        "production",
        _task_input,
        diagnostic=True,
        sandboxed=True,
    ),
    Variant(
        "bare_plus_task_events",
        "bare + production's 2 task-level local activities (recorder without I/O)",
        "BenchBare",
        "no_io",
        _bench_input("local_activity", task_events=True),
        diagnostic=True,
    ),
    Variant(
        "bare_plus_upserts",
        "bare + production's search-attribute upserts (patch marker, status+step at the end)",
        "BenchBare",
        "none",
        _bench_input("local_activity", upserts="lean"),
        diagnostic=True,
    ),
    Variant(
        "bare_plus_upserts_per_step",
        "bare + the upserts before issue 15 (status x2, step x5)",
        "BenchBare",
        "none",
        _bench_input("local_activity", upserts="per_step"),
        diagnostic=True,
    ),
)


def _recorder(ctx: BenchContext, kind: str) -> EventRecorder:
    store, outbox = EventStore(ctx.pool), Outbox(ctx.pool)
    if kind == "production":
        return EventRecorder(store, outbox, ctx.broker)
    if kind == "batched":
        return BatchingRecorder(ctx.broker, ctx.pool)
    if kind == "floor":
        return FloorRecorder(ctx.pool, ctx.endpoints.redis_url, stream_key=ctx.broker.stream_key)
    return NoIoRecorder()


@dataclass
class Window:
    seconds: float
    completed: list[str]
    cpu: dict[str, float]


async def _closed_loop(
    ctx: BenchContext,
    variant: Variant,
    task_queue: str,
    *,
    lanes: int,
    warmup: float,
    window: float,
    failures: ActivityFailures,
) -> Window:
    """`lanes` workflows in flight at all times; count what completes inside the window.

    A steady state, not a batch: no ramp-up or tail in the figure. When the
    window closes, lanes stop starting workflows and the ones in flight finish
    (outside the window), so no run leaves work behind for the next.
    """
    completions: list[tuple[float, str]] = []
    closing = asyncio.Event()
    window_open = asyncio.Event()
    counted = asyncio.Event()  # a workflow completed inside the window

    async def lane() -> None:
        while not closing.is_set():
            task_id = str(uuid.uuid4())
            handle = await ctx.client.start_workflow(
                variant.workflow,
                variant.make_input(task_id),
                id=workflow_id_for(task_id),
                task_queue=task_queue,
                # The API's start options (TaskClient): what the task shows from its start.
                search_attributes=start_search_attributes("demo.pipeline"),
            )
            await handle.result()
            completions.append((time.monotonic(), task_id))
            if window_open.is_set():
                counted.set()

    tasks = [asyncio.create_task(lane()) for _ in range(lanes)]
    try:
        await asyncio.sleep(warmup)
        before = ctx.cpu_snapshot()
        opened = time.monotonic()
        window_open.set()
        await asyncio.sleep(window)
        # On a busy machine a short window can see no completion at all: that measures
        # nothing (0 tasks/s, and a ratio divided by zero), so it stays open until one.
        # A variant whose activities keep failing never completes: give up on it then.
        await _until_counted(counted, failures, within=120)
        closed = time.monotonic()
        cpu = cpu_delta(before, ctx.cpu_snapshot())
        closing.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)
    finally:
        for task in tasks:
            task.cancel()
    completed = [task_id for at, task_id in completions if opened <= at <= closed]
    return Window(closed - opened, completed, cpu)


async def _until_counted(
    counted: asyncio.Event, failures: ActivityFailures, *, within: float
) -> None:
    deadline = time.monotonic() + within
    while not counted.is_set():
        failures.check()
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no workflow completed inside the window")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(counted.wait(), timeout=min(1.0, left))


async def _count_events(ctx: BenchContext, task_ids: list[str]) -> int:
    async with ctx.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM events WHERE task_id = ANY(%s)", (task_ids,)
        )
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def run_variant(ctx: BenchContext, variant: Variant) -> dict[str, Any]:
    task_queue = f"bench-{variant.name}-{uuid.uuid4().hex[:6]}"
    if variant.worker_loops:
        return await _with_worker_runtime(ctx, variant, task_queue)
    recorder = _recorder(ctx, variant.recorder)
    failures = ActivityFailures()
    try:
        async with bench_worker(
            ctx.client,
            recorder,
            task_queue=task_queue,
            failures=failures,
            sandboxed=variant.sandboxed,
        ):
            window = await _window(ctx, variant, task_queue, failures)
    finally:
        if isinstance(recorder, BatchingRecorder | FloorRecorder):
            await recorder.close()
    return await _result(ctx, variant, window, recorder)


async def _with_worker_runtime(
    ctx: BenchContext, variant: Variant, task_queue: str
) -> dict[str, Any]:
    """The variant run by the production worker's whole runtime (`WorkerRuntime`: relay,
    webhook dispatcher, durable handlers (none by default), reconciler, metrics
    refresh), whose loops compete with the workflows for the same CPU."""
    settings = Settings(
        database_url=ctx.endpoints.database_url,
        redis_url=ctx.endpoints.redis_url,
        temporal_address=ctx.endpoints.temporal_address,
        task_queue=task_queue,
        worker_metrics_port=None,
        worker_metrics_temporal_port=None,
    )

    failures = ActivityFailures()

    def make_worker(client: Client, recorder: EventRecorder, queue: str) -> Worker:
        return bench_worker(client, recorder, task_queue=queue, failures=failures)

    async with WorkerRuntime(settings, make_worker=make_worker) as runtime:
        window = await _window(ctx, variant, task_queue, failures)
    return await _result(ctx, variant, window, runtime.recorder)


async def _window(
    ctx: BenchContext, variant: Variant, task_queue: str, failures: ActivityFailures
) -> Window:
    sizes = ctx.sizes
    return await _closed_loop(
        ctx,
        variant,
        task_queue,
        lanes=sizes.throughput_concurrency,
        warmup=sizes.throughput_warmup_seconds,
        window=sizes.throughput_window_seconds,
        failures=failures,
    )


async def _result(
    ctx: BenchContext, variant: Variant, window: Window, recorder: EventRecorder
) -> dict[str, Any]:
    records = variant.recorder in ("production", "batched", "floor")
    events = await _count_events(ctx, window.completed) if records else 0
    tasks = len(window.completed)
    per_task = max(tasks, 1)
    result: dict[str, Any] = {
        "tasks": tasks,
        "seconds": round(window.seconds, 3),
        "tasks_per_s": round(tasks / window.seconds, 2),
        "events": events,
        "events_per_s": round(events / window.seconds, 1),
        "cpu_ms_per_task": {
            name: round(sec * 1000 / per_task, 2) for name, sec in window.cpu.items()
        },
    }
    if isinstance(recorder, BatchingRecorder) and recorder.batch_sizes:
        result["mean_batch_size"] = round(sum(recorder.batch_sizes) / len(recorder.batch_sizes), 2)
    groups = getattr(recorder, "groups", None)  # group commit (the run's whole life)
    if groups is not None and groups.groups:
        result["grouped_recordings"] = groups.grouped
        result["mean_group_size"] = round(groups.grouped / groups.groups, 2)
        result["group_fallbacks"] = groups.fallbacks
    return result


async def run(ctx: BenchContext) -> dict[str, Any]:
    wanted = {name for name in ctx.sizes.throughput_variants.split(",") if name} or {
        variant.name
        for variant in VARIANTS
        if ctx.sizes.throughput_diagnostics or not variant.diagnostic
    }
    wanted.add(BASELINE)
    variants = tuple(variant for variant in VARIANTS if variant.name in wanted)
    rounds: list[dict[str, dict[str, Any]]] = []
    for index in range(ctx.sizes.throughput_rounds):
        shift = index % len(variants)
        order = variants[shift:] + variants[:shift]  # rotate: no variant always runs first
        this_round: dict[str, dict[str, Any]] = {}
        for variant in order:
            this_round[variant.name] = await run_variant(ctx, variant)
            print(
                f"  throughput round {index + 1}: {variant.name:<26}"
                f" {this_round[variant.name]['tasks_per_s']:7.2f} tasks/s",
                flush=True,
            )
        rounds.append(this_round)
    return summarise(rounds, variants)


def summarise(
    rounds: list[dict[str, dict[str, Any]]], variants: tuple[Variant, ...]
) -> dict[str, Any]:
    summary: dict[str, Any] = {"steps": STEPS, "rounds": rounds, "variants": {}}
    for variant in variants:
        runs = [r[variant.name] for r in rounds if variant.name in r]
        ratios = [
            r[variant.name]["tasks_per_s"] / r[BASELINE]["tasks_per_s"]
            for r in rounds
            if variant.name in r and BASELINE in r
        ]
        cpu_names = runs[0]["cpu_ms_per_task"].keys() if runs else ()
        summary["variants"][variant.name] = {
            "description": variant.description,
            "median_tasks_per_s": round(median([r["tasks_per_s"] for r in runs]), 2),
            "median_events_per_s": round(median([r["events_per_s"] for r in runs]), 1),
            "events_per_task": round(runs[0]["events"] / runs[0]["tasks"], 2) if runs else 0,
            "median_ratio_to_bare": round(median(ratios), 3) if ratios else None,
            "ratios_to_bare": [round(r, 3) for r in ratios],
            "median_cpu_ms_per_task": {
                name: round(median([r["cpu_ms_per_task"][name] for r in runs]), 2)
                for name in cpu_names
            },
        }
    return summary
