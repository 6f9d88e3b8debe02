"""Part 2: how late a live event reaches its watcher, Taskplane SSE vs Workflow Streams.

Both systems carry the same events at the same steady rate (about 200
events/s over several `demo.pipeline`-shaped tasks, progress ticks on fixed
deadlines), in alternating rounds of the same run:

- Taskplane: the real processes as `taskplane up` runs them (`python -m
  worker`, `python -m api`); tasks created with `POST /tasks`; one SSE client
  per task (raw sockets) in this process.
- Workflow Streams: `BenchStreamedPipeline` on `python -m bench.worker` (same
  worker settings); the step activity publishes every event with
  `force_flush=True`; one `WorkflowStreamClient.subscribe` per task in this
  process, with the library's default poll cooldown (100 ms).

Latency of a step event = the wall-clock time the client got it minus the
envelope's `time`, which both systems stamp when the event is produced (for
Taskplane: in `EventRecorder.record`, just before the Postgres transaction;
for Workflow Streams: just before `publish`). For Taskplane the bench also
reads the commit time Postgres recorded for the event's transaction
(`pg_xact_commit_timestamp`), giving commit-to-client latency. Events produced
before the client's stream was open are history, not live, and are left out.
Task-level events are left out on both sides (the streamed workflow stamps
them with workflow time).

The clients stamp a receipt when this process's loop reads the socket, so a round
runs with this process's cyclic GC off and reports how late its loop ran
(`bench.quiet_client`): a stall of the measuring process is not the product's.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import orjson
from psycopg_pool import AsyncConnectionPool
from temporalio.contrib.workflow_streams import WorkflowStreamClient

from bench import wal_flush
from bench.context import BenchContext
from bench.models import BenchPipelineInput
from bench.procs import ChildProcess
from bench.quiet_client import measuring
from bench.sse_client import SseConnection, open_stream
from bench.stats import distribution_ms, epoch, median, summary_ms
from bench.workflows import STREAM_TOPIC
from schemas.workflow import workflow_id_for

STEPS = 3
STEP_EVENT_PREFIX = "task.step."


def _shape(ctx: BenchContext) -> dict[str, Any]:
    """Per-task input: ticks spread so all tasks together make `latency_rate` events/s."""
    sizes = ctx.sizes
    per_task_rate = sizes.latency_rate / sizes.latency_tasks
    step_seconds = sizes.latency_seconds / STEPS
    return {
        "steps": STEPS,
        "step_seconds": step_seconds,
        "progress_ticks": max(1, round(per_task_rate * step_seconds)),
    }


async def _taskplane_round(ctx: BenchContext, api: ChildProcess) -> dict[str, Any]:
    shape = _shape(ctx)
    streams: list[tuple[str, SseConnection]] = []
    wal_before = await wal_flush.wal_syncs(ctx.pool)
    async with (
        httpx.AsyncClient(base_url=api.base_url, timeout=30) as http,
        measuring() as client_lag,
    ):
        began = time.monotonic()
        for _ in range(ctx.sizes.latency_tasks):
            created = await http.post("/tasks", json={"type": "demo.pipeline", "input": shape})
            created.raise_for_status()
            task_id = created.json()["task_id"]
            stream = await open_stream("127.0.0.1", api.port, f"/tasks/{task_id}/events")
            streams.append((task_id, stream))
        await asyncio.gather(*(s.closed for _, s in streams))
        elapsed = time.monotonic() - began
    wal = wal_flush.during(wal_before, await wal_flush.wal_syncs(ctx.pool))
    commit_times = await read_commit_times(ctx.pool, [task_id for task_id, _ in streams])
    record_lat: list[float] = []
    commit_lat: list[float] = []
    to_commit: list[float] = []
    produced: list[float] = []
    events = excluded = 0
    for task_id, stream in streams:
        for frame in stream.frames:
            if not frame.is_event:
                continue
            events += 1
            envelope = orjson.loads(frame.data)
            if not envelope["type"].startswith(STEP_EVENT_PREFIX):
                continue
            at = epoch(envelope["time"])
            produced.append(at)
            if at < stream.opened_at:
                excluded += 1
                continue
            record_lat.append(frame.received - at)
            committed = commit_times.get((task_id, envelope["sequence"]))
            if committed is not None:
                commit_lat.append(frame.received - committed)
                to_commit.append(committed - at)
    return {
        "events": events,
        "seconds": round(elapsed, 2),
        "events_per_s": _rate(produced),
        "excluded_as_history": excluded,
        **client_lag.summary(),
        **wal,
        "record_to_client": record_lat,
        "commit_to_client": commit_lat,
        "record_to_commit": to_commit,
    }


async def read_commit_times(
    pool: AsyncConnectionPool, task_ids: list[str]
) -> dict[tuple[str, int], float]:
    """(task id, sequence) → when Postgres committed that event (epoch seconds); empty when
    the server does not track commit timestamps (one the bench was given)."""
    async with pool.connection() as conn:
        try:
            cursor = await conn.execute(
                "SELECT task_id, seq, extract(epoch FROM pg_xact_commit_timestamp(xmin))::float8"
                " FROM events WHERE task_id = ANY(%s)",
                (task_ids,),
            )
            rows = await cursor.fetchall()
        except Exception:  # track_commit_timestamp is off on a server we were given
            await conn.rollback()
            return {}
    return {(str(t), int(s)): float(c) for t, s, c in rows if c is not None}


async def _streams_round(ctx: BenchContext, task_queue: str) -> dict[str, Any]:
    shape = _shape(ctx)
    received: list[tuple[float, float, dict[str, Any]]] = []  # (subscribed_at, at, event)

    async def watch(workflow_id: str) -> int:
        stream = WorkflowStreamClient.create(ctx.client, workflow_id)
        subscribed_at = time.time()
        count = 0
        async for item in stream.subscribe(STREAM_TOPIC, from_offset=0, result_type=dict):
            received.append((subscribed_at, time.time(), item.data))
            count += 1
        return count

    watchers = []
    async with measuring() as client_lag:  # the same conditions as Taskplane's rounds
        began = time.monotonic()
        for _ in range(ctx.sizes.latency_tasks):
            task_id = str(uuid.uuid4())
            workflow_id = workflow_id_for(task_id)
            await ctx.client.start_workflow(
                "BenchStreamedPipeline",
                BenchPipelineInput(task_id=task_id, **shape),
                id=workflow_id,
                task_queue=task_queue,
            )
            watchers.append(asyncio.create_task(watch(workflow_id)))
        counts = await asyncio.gather(*watchers)
        elapsed = time.monotonic() - began
    latencies: list[float] = []
    produced: list[float] = []
    excluded = 0
    for subscribed_at, at, event in received:
        if not str(event.get("type", "")).startswith(STEP_EVENT_PREFIX):
            continue
        produced.append(epoch(event["time"]))
        if produced[-1] < subscribed_at:
            excluded += 1
            continue
        latencies.append(at - produced[-1])
    events = sum(counts)
    return {
        "events": events,
        "seconds": round(elapsed, 2),
        "events_per_s": _rate(produced),
        "excluded_as_history": excluded,
        **client_lag.summary(),
        "publish_to_client": latencies,
    }


def _rate(produced: list[float]) -> float:
    """Step events per second while they were being produced (from their own stamps)."""
    if len(produced) < 2:
        return 0.0
    return round((len(produced) - 1) / (max(produced) - min(produced)), 1)


async def run(ctx: BenchContext) -> dict[str, Any]:
    api = ChildProcess("api", ctx.endpoints, ctx.log_dir)
    # Every tick is an event whose latency is measured: no progress coalescing (a task's
    # share of `latency_rate` is above TASKPLANE_PROGRESS_MAX_RATE's default).
    worker = ChildProcess(
        "worker", ctx.endpoints, ctx.log_dir, task_queue=api.task_queue, progress_max_rate="0"
    )
    streams_worker = ChildProcess("bench.worker", ctx.endpoints, ctx.log_dir)
    for child in (worker, streams_worker, api):
        child.start()
    try:
        await asyncio.to_thread(api.wait_ready)
        await asyncio.sleep(2)  # the workers' pollers are up well before this
        taskplane: list[dict[str, Any]] = []
        streams: list[dict[str, Any]] = []
        for index in range(ctx.sizes.latency_rounds):
            taskplane.append(await _taskplane_round(ctx, api))
            print(
                f"  latency round {index + 1}: taskplane"
                f" {_brief(taskplane[-1], 'record_to_client')}"
            )
            streams.append(await _streams_round(ctx, streams_worker.task_queue))
            print(
                f"  latency round {index + 1}: streams   {_brief(streams[-1], 'publish_to_client')}"
            )
    finally:
        for child in (api, worker, streams_worker):
            child.stop()
    return summarise(ctx, taskplane, streams)


def _brief(result: dict[str, Any], key: str) -> str:
    s = summary_ms(result[key])
    rate = result["events_per_s"]
    lag = result["client_loop_max_lag_ms"]
    wal = result.get("wal_sync_mean_ms")
    flush = f", WAL sync mean {wal:.2f} ms" if wal is not None else ""
    return (
        f"{rate:6.1f} events/s  p50 {s['p50_ms']:.1f} ms  p99 {s['p99_ms']:.1f} ms"
        f"  (bench loop max lag {lag:.1f} ms{flush})"
    )


def summarise(
    ctx: BenchContext, taskplane: list[dict[str, Any]], streams: list[dict[str, Any]]
) -> dict[str, Any]:
    record = [x for r in taskplane for x in r["record_to_client"]]
    commit = [x for r in taskplane for x in r["commit_to_client"]]
    to_commit = [x for r in taskplane for x in r["record_to_commit"]]
    published = [x for r in streams for x in r["publish_to_client"]]
    tp, cm, ws = summary_ms(record), summary_ms(commit), summary_ms(published)

    def rounds(results: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in r.items() if not isinstance(v, list)} | summary_ms(r[key])
            for r in results
        ]

    return {
        "target_rate_events_per_s": ctx.sizes.latency_rate,
        "tasks": ctx.sizes.latency_tasks,
        "task_input": _shape(ctx),
        "taskplane": {
            "events_per_s": median([r["events_per_s"] for r in taskplane]),
            "record_to_client": tp,
            "commit_to_client": cm,
            # The recording activity's own part: envelope stamped → Postgres commit.
            "record_to_commit": summary_ms(to_commit),
            "rounds": rounds(taskplane, "record_to_client"),
            "distribution_ms": distribution_ms(record),
            "commit_distribution_ms": distribution_ms(commit),
        },
        "workflow_streams": {
            "events_per_s": median([r["events_per_s"] for r in streams]),
            "publish_to_client": ws,
            "rounds": rounds(streams, "publish_to_client"),
            "distribution_ms": distribution_ms(published),
            "settings": (
                "publish(force_flush=True) per event; subscribe() default poll_cooldown 100 ms"
            ),
        },
        "ratio_p50": round(ws["p50_ms"] / tp["p50_ms"], 1) if tp["p50_ms"] else None,
        "ratio_p99": round(ws["p99_ms"] / tp["p99_ms"], 1) if tp["p99_ms"] else None,
    }
