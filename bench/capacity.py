"""Part 3: idle SSE streams one API process holds, its memory per stream, and fan-out.

Capacity: a fresh `python -m api` (RLIMIT_NOFILE raised by the bench and
inherited; its stream cap raised to the largest step); streams are opened on
running tasks (spread over `capacity_topics` tasks, so the process holds that
many Redis subscriptions)
in steps, each stream counted only once its first event (the task's history)
arrived. Memory per stream = growth of the API's VmRSS since a warm-up of 50
streams, divided by the streams added. The clients are raw asyncio sockets in
this process, so they cost the API nothing but their connection.

Fan-out: `fanout_clients` streams on ONE task, then events recorded through
the production `EventRecorder` (Postgres + Redis, as a worker would)
`fanout_interval_seconds` apart; per delivery, latency = receipt minus the
envelope's `time`, and per event the latency of its last client (p50, p99).
The API's CPU over those events, per delivery, says what one delivery costs.

Floors: the same measurement on `bench.sse_floor`'s minimal servers (bare
uvicorn with a raw ASGI handler; with sse-starlette), so the API's memory per
stream can be split into uvicorn's, sse-starlette's and Taskplane's own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from activities.recorder import EventRecorder
from bench.context import BenchContext
from bench.procs import ChildProcess, rss_kib, tree_cpu_seconds
from bench.seed import seed_tasks
from bench.sse_client import Frame, SseConnection, open_stream
from bench.stats import epoch, median, percentile, summary_ms
from store import EventStore, Outbox

WARMUP_STREAMS = 50
OPEN_CONCURRENCY = 100


class StreamPool:
    """Open SSE streams and the moment each got its first event."""

    def __init__(self, api: ChildProcess) -> None:
        self._api = api
        self.streams: list[SseConnection] = []
        self.failures = 0

    async def open(self, task_ids: Sequence[str], count: int, *, keep_frames: bool = False) -> None:
        gate = asyncio.Semaphore(OPEN_CONCURRENCY)
        start = len(self.streams)

        async def one(index: int) -> None:
            task_id = task_ids[index % len(task_ids)]
            first: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            def on_frame(_: SseConnection, frame: Frame) -> None:
                if frame.is_event and not first.done():
                    first.set_result(None)

            async with gate:
                try:
                    stream = await open_stream(
                        "127.0.0.1",
                        self._api.port,
                        f"/tasks/{task_id}/events",
                        keep_frames=keep_frames,
                        on_frame=on_frame,
                    )
                    await asyncio.wait_for(first, timeout=60)
                except (OSError, TimeoutError):
                    self.failures += 1
                    return
            self.streams.append(stream)

        await asyncio.gather(*(one(i) for i in range(start, start + count)))

    def close_all(self) -> None:
        for stream in self.streams:
            stream.close()
        self.streams.clear()


async def _healthz_ms(api: ChildProcess, samples: int = 20) -> float:
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as http:
        times = []
        for _ in range(samples):
            began = time.monotonic()
            (await http.get("/healthz")).raise_for_status()
            times.append((time.monotonic() - began) * 1000)
    return round(median(times), 2)


async def _capacity(ctx: BenchContext, api: ChildProcess) -> dict[str, Any]:
    task_ids = await seed_tasks(ctx, ctx.sizes.capacity_topics, 1, terminal=False)
    pool = StreamPool(api)
    await pool.open(task_ids, WARMUP_STREAMS)
    await asyncio.sleep(1)
    base_rss = rss_kib(api.pid)
    steps: list[dict[str, Any]] = []
    for target in ctx.sizes.capacity_steps:
        began = time.monotonic()
        await pool.open(task_ids, target - len(pool.streams))
        opened = time.monotonic() - began
        await asyncio.sleep(1)
        rss = rss_kib(api.pid)
        added = len(pool.streams) - WARMUP_STREAMS
        step = {
            "target": target,
            "open_streams": len(pool.streams),
            "failed": pool.failures,
            "open_seconds": round(opened, 2),
            "api_rss_mib": round(rss / 1024, 1),
            "kib_per_stream": round((rss - base_rss) / added, 1) if added > 0 else None,
        }
        steps.append(step)
        print(
            f"  capacity {step['open_streams']:>5} streams  {step['api_rss_mib']:7.1f} MiB"
            f"  {step['kib_per_stream']} KiB/stream  ({step['failed']} failed)",
            flush=True,
        )
    healthz_ms = await _healthz_ms(api)
    held = len(pool.streams)
    pool.close_all()
    await asyncio.sleep(2)
    return {
        "topics": len(task_ids),
        "warmup_streams": WARMUP_STREAMS,
        "base_rss_mib": round(base_rss / 1024, 1),
        "steps": steps,
        "max_streams_held": held,
        "kib_per_stream_at_max": steps[-1]["kib_per_stream"] if steps else None,
        "healthz_median_ms_at_max": healthz_ms,
        "rss_mib_after_close": round(rss_kib(api.pid) / 1024, 1),
    }


async def _fanout(ctx: BenchContext, api: ChildProcess) -> dict[str, Any]:
    (task_id,) = await seed_tasks(ctx, 1, 1, terminal=False)
    pool = StreamPool(api)
    await pool.open([task_id], ctx.sizes.fanout_clients, keep_frames=True)
    recorder = EventRecorder(EventStore(ctx.pool), Outbox(ctx.pool), ctx.broker)
    await asyncio.sleep(1)
    api_cpu = tree_cpu_seconds(api.pid)
    for tick in range(1, ctx.sizes.fanout_events + 1):
        await recorder.record(
            event_id=f"fanout-{task_id}-{tick}",
            task_id=task_id,
            event_type="task.step.progress.v1",
            data={"index": 1, "name": "step-1", "percent": float(tick), "total_steps": 1},
        )
        await asyncio.sleep(ctx.sizes.fanout_interval_seconds)
    await asyncio.sleep(1)
    api_cpu = tree_cpu_seconds(api.pid) - api_cpu
    deliveries: list[float] = []
    slowest: dict[int, float] = {}
    for stream in pool.streams:
        for frame in stream.frames:
            if not frame.is_event:
                continue
            envelope = orjson.loads(frame.data)
            if envelope["type"] != "task.step.progress.v1":
                continue
            delay = frame.received - epoch(envelope["time"])
            deliveries.append(delay)
            sequence = int(envelope["sequence"])
            slowest[sequence] = max(slowest.get(sequence, 0.0), delay)
    clients = len(pool.streams)
    pool.close_all()
    expected = clients * ctx.sizes.fanout_events
    return {
        "clients": clients,
        "events": ctx.sizes.fanout_events,
        "deliveries": len(deliveries),
        "missing_deliveries": expected - len(deliveries),
        "delivery": summary_ms(deliveries),
        "median_last_client_ms": round(median(list(slowest.values())) * 1000, 2),
        "p99_last_client_ms": round(percentile(list(slowest.values()), 99) * 1000, 2),
        # The API's CPU while fanning out (idle streams' pings included: one per 15 s).
        "api_cpu_us_per_delivery": round(api_cpu * 1e6 / max(len(deliveries), 1), 1),
    }


async def _floor(ctx: BenchContext, kind: str) -> float | None:
    """KiB per idle stream on a minimal server (bench.sse_floor) at `capacity_floor_streams`."""
    server = ChildProcess("bench.sse_floor", ctx.endpoints, ctx.log_dir, bench_floor=kind)
    server.start()
    try:
        await asyncio.to_thread(server.wait_ready)
        pool = StreamPool(server)
        task_ids = ["00000000-0000-0000-0000-000000000000"]
        await pool.open(task_ids, WARMUP_STREAMS)
        await asyncio.sleep(1)
        base = rss_kib(server.pid)
        await pool.open(task_ids, ctx.sizes.capacity_floor_streams - WARMUP_STREAMS)
        await asyncio.sleep(1)
        added = len(pool.streams) - WARMUP_STREAMS
        kib = (rss_kib(server.pid) - base) / added if added > 0 else None
        pool.close_all()
    finally:
        server.stop()
    return None if kib is None else round(kib, 1)


async def run(ctx: BenchContext) -> dict[str, Any]:
    most = max(ctx.sizes.capacity_steps, default=0) + WARMUP_STREAMS
    api = ChildProcess("api", ctx.endpoints, ctx.log_dir, sse_max_streams=str(most))
    api.start()
    try:
        await asyncio.to_thread(api.wait_ready)
        result = {"capacity": await _capacity(ctx, api)}
        result["fanout"] = await _fanout(ctx, api)
        fan = result["fanout"]["delivery"]
        print(
            f"  fan-out to {result['fanout']['clients']} clients:"
            f" p50 {fan['p50_ms']} ms  p99 {fan['p99_ms']} ms,"
            f" last client p99 {result['fanout']['p99_last_client_ms']} ms,"
            f" {result['fanout']['api_cpu_us_per_delivery']} µs API CPU per delivery"
        )
    finally:
        api.stop()
    floors = {kind: await _floor(ctx, kind) for kind in ("raw", "sse_starlette")}
    result["capacity"]["floor_kib_per_stream"] = floors
    print(f"  memory floor per stream: {floors} KiB (at {ctx.sizes.capacity_floor_streams})")
    return result
