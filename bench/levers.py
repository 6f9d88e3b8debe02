"""Part 5: speed levers, measured and reported (never applied here: production is not the bench's).

- Recording one event (`EventRecorder.record`: validate, append, publish,
  mark published), sequentially for one task, on a loop of its own in a
  thread of its own, so `time.thread_time()` is the recording's CPU alone:
  production on asyncio's loop; production on uvloop; and production without
  the outbox marks (`unmarked_recorder`, a bound); and the contract's floor
  (bench/event_floor.py: one statement, one EVALSHA, no rules), the yardstick.
- Group commit (activities/group_commit.py): 20 tasks recording at once, with and
  without groups, alternating: CPU per event of the recording loop's thread.
- Publishing one event: the production script against a redis-py pipeline
  (bench/publish_cost.py).
- Decoding one live message in the API: `schemas.decode_event` (what each SSE
  stream does with every broker message, so a fan-out to N clients decodes the
  same message N times) against a bare `orjson.loads`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import uvloop
from psycopg import AsyncConnection

from activities.recorder import DEFAULT_MAX_GROUP, EventRecorder
from bench.context import BenchContext, cpu_delta
from bench.event_floor import FloorRecorder
from bench.publish_cost import publish_cost
from bench.recorders import unmarked_recorder
from bench.stats import median
from broker.redis import RedisBroker
from schemas import decode_event
from settings.config import Settings
from store import EventStore, Outbox, open_pool
from store.partitions import PartitionPolicy, make_ahead, partitions

RECORDERS = ("production", "production_uvloop", "unmarked", "floor")


async def record_events(ctx: BenchContext, kind: str, events: int) -> dict[str, float]:
    """Record `events` progress events of one new task; wall and CPU per event (ms)."""
    pool = await open_pool(ctx.endpoints.database_url, min_size=2, max_size=4)
    broker = RedisBroker(ctx.endpoints.redis_url)
    await broker.connect()
    recorder: EventRecorder
    if kind == "floor":
        recorder = FloorRecorder(pool, ctx.endpoints.redis_url, stream_key=broker.stream_key)
    elif kind == "unmarked":
        recorder = unmarked_recorder(broker, pool)
    else:
        recorder = EventRecorder(EventStore(pool), Outbox(pool), broker)
    try:
        return await _timed_records(ctx, recorder, events)
    finally:
        if isinstance(recorder, FloorRecorder):
            await recorder.close()
        await broker.close()
        await pool.close()


async def _timed_records(
    ctx: BenchContext, recorder: EventRecorder, events: int
) -> dict[str, float]:
    task_id = str(uuid.uuid4())
    await recorder.record(
        event_id=str(uuid.uuid4()),
        task_id=task_id,
        event_type="task.created.v1",
        data={"task_type": "demo.pipeline", "input": {}},
    )
    servers = ctx.cpu_snapshot()  # before the pools close: backends' CPU dies with them
    wall, cpu = time.perf_counter(), time.thread_time()
    for tick in range(1, events + 1):
        await recorder.record(
            event_id=str(uuid.uuid4()),
            task_id=task_id,
            event_type="task.step.progress.v1",
            data={
                "index": 1,
                "name": "step-1",
                "percent": round(tick * 100 / events, 3),
                "message": f"tick {tick}/{events}",
                "total_steps": 1,
            },
        )
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    servers = cpu_delta(servers, ctx.cpu_snapshot())
    result = {"wall_ms": wall * 1000 / events, "cpu_ms": cpu * 1000 / events}
    for name in ("postgres", "redis"):
        if name in servers:
            result[f"{name}_cpu_ms"] = servers[name] * 1000 / events
    return result


def _in_thread(ctx: BenchContext, kind: str, events: int) -> dict[str, float]:
    """One run on a fresh loop in this (worker) thread: uvloop's or asyncio's."""
    recorder = kind.removesuffix("_uvloop")
    if kind.endswith("_uvloop"):
        return uvloop.run(record_events(ctx, recorder, events))
    return asyncio.run(record_events(ctx, recorder, events))


async def _partitions_ahead(ctx: BenchContext, days: int) -> int:
    """Make `days` daily partitions of `events` ahead (production's `make_ahead`); how many
    `events` has then."""
    async with await AsyncConnection.connect(ctx.endpoints.database_url, autocommit=True) as conn:
        if days:
            await make_ahead(conn, PartitionPolicy(ahead_seconds=days * 86_400.0))
        return len(await partitions(conn))


async def _recording(ctx: BenchContext) -> dict[str, Any]:
    runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in RECORDERS}
    events = ctx.sizes.lever_events
    partition_count = await _partitions_ahead(ctx, ctx.sizes.lever_partitions_ahead)
    for _ in range(ctx.sizes.lever_rounds):
        for kind in RECORDERS:
            runs[kind].append(await asyncio.to_thread(_in_thread, ctx, kind, events))
    summary: dict[str, Any] = {
        "events_per_run": events,
        "rounds": ctx.sizes.lever_rounds,
        "events_partitions": partition_count,
    }
    for kind, results in runs.items():
        summary[kind] = {key: round(median([r[key] for r in results]), 3) for key in results[0]}
    return summary


async def _record_concurrently(
    ctx: BenchContext, max_group: int, lanes: int, events: int
) -> dict[str, float]:
    """`lanes` tasks recording progress at once (each its events one after another, as a
    step does), `events` in all, group commit up to `max_group` (1: none); per event."""
    pool = await open_pool(ctx.endpoints.database_url, min_size=2, max_size=10)
    broker = RedisBroker(ctx.endpoints.redis_url)
    await broker.connect()
    try:
        in_flight = Settings().record_commits_in_flight  # TASKPLANE_RECORD_COMMITS_IN_FLIGHT
        recorder = EventRecorder(
            EventStore(pool),
            Outbox(pool),
            broker,
            max_group=max_group,
            commits_in_flight=in_flight,
        )
        created = {"task_type": "demo.pipeline", "input": {}}
        tasks = [str(uuid.uuid4()) for _ in range(lanes)]
        for task_id in tasks:
            await recorder.record(
                event_id=str(uuid.uuid4()),
                task_id=task_id,
                event_type="task.created.v1",
                data=created,
            )

        async def lane(task_id: str) -> None:
            for tick in range(1, events // lanes + 1):
                await recorder.record(
                    event_id=str(uuid.uuid4()),
                    task_id=task_id,
                    event_type="task.step.progress.v1",
                    data={"index": 1, "name": "step-1", "percent": tick, "total_steps": 1},
                )

        servers = ctx.cpu_snapshot()
        wall, cpu = time.perf_counter(), time.thread_time()
        await asyncio.gather(*(lane(task_id) for task_id in tasks))
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        servers = cpu_delta(servers, ctx.cpu_snapshot())
        await recorder.flush_marks()
    finally:
        await broker.close()
        await pool.close()
    done = events // lanes * lanes
    groups = recorder.groups
    result = {
        "wall_ms": wall * 1000 / done,
        "cpu_ms": cpu * 1000 / done,
        "grouped_share": (groups.grouped / done) if groups else 0.0,
        "mean_group": (groups.grouped / groups.groups) if groups and groups.groups else 0.0,
    }
    for name in ("postgres", "redis"):
        if name in servers:
            result[f"{name}_cpu_ms"] = servers[name] * 1000 / done
    return result


async def _grouping(ctx: BenchContext, lanes: int = 20) -> dict[str, Any]:
    """Group commit against none, alternating, each run on a loop of its own thread."""
    kinds = {"group_commit": DEFAULT_MAX_GROUP, "one_by_one": 1}
    runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    for _ in range(ctx.sizes.lever_rounds):
        for kind, max_group in kinds.items():
            run_one = _record_concurrently(ctx, max_group, lanes, ctx.sizes.lever_events)
            runs[kind].append(await asyncio.to_thread(asyncio.run, run_one))
    summary: dict[str, Any] = {"lanes": lanes, "rounds": ctx.sizes.lever_rounds}
    for kind, results in runs.items():
        summary[kind] = {key: round(median([r[key] for r in results]), 3) for key in results[0]}
    return summary


def _decode_cost(iterations: int = 2000) -> dict[str, float]:
    payload = orjson.dumps(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "/taskplane",
            "type": "task.step.progress.v1",
            "subject": str(uuid.uuid4()),
            "time": "2026-11-27T10:00:00.123456Z",
            "datacontenttype": "application/json",
            "data": {
                "index": 2,
                "name": "step-2",
                "percent": 42.5,
                "message": "tick 17/40",
                "total_steps": 3,
            },
            "sequence": 57,
        }
    ).decode()
    decode_event(payload)  # warm

    def per_call_us(fn: Callable[[str], Any]) -> float:
        began = time.perf_counter()
        for _ in range(iterations):
            fn(payload)
        return (time.perf_counter() - began) * 1e6 / iterations

    decode_us = per_call_us(decode_event)
    loads_us = per_call_us(orjson.loads)
    return {
        "decode_event_us": round(decode_us, 2),
        "orjson_loads_us": round(loads_us, 2),
        "decode_ms_per_1000_clients": round(decode_us, 2),  # µs per client = ms per 1,000
    }


async def run(ctx: BenchContext) -> dict[str, Any]:
    recording = await _recording(ctx)
    print(f"  recording into `events` of {recording['events_partitions']} partitions")
    for kind in RECORDERS:
        r = recording[kind]
        servers = "".join(
            f"  {name} {r[f'{name}_cpu_ms']:.3f}"
            for name in ("postgres", "redis")
            if f"{name}_cpu_ms" in r
        )
        print(
            f"  record() {kind:<18} {r['wall_ms']:.3f} ms wall  {r['cpu_ms']:.3f} ms CPU /event"
            + (f"  (servers' CPU ms /event:{servers})" if servers else "")
        )
    grouping = await _grouping(ctx)
    for kind in ("group_commit", "one_by_one"):
        r = grouping[kind]
        print(
            f"  {grouping['lanes']} lanes {kind:<14} {r['wall_ms']:.3f} ms wall"
            f"  {r['cpu_ms']:.3f} ms CPU /event (mean group {r['mean_group']:.1f})"
        )
    publishing = await publish_cost(ctx)
    print(
        f"  publish one event: script {publishing['script_cpu_us']} µs CPU"
        f" ({publishing['script_no_read_timeout_cpu_us']} without the read timeout),"
        f" pipeline {publishing['pipeline_cpu_us']} µs CPU"
    )
    decode = _decode_cost()
    print(
        f"  decode_event {decode['decode_event_us']} µs/message"
        f" (orjson.loads {decode['orjson_loads_us']} µs)"
    )
    return {"record": recording, "grouping": grouping, "publish": publishing, "decode": decode}
