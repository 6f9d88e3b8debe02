"""Part 4: how fast a client that resumes catches up on a long task.

One finished task with N events (10,000 in a full run) is stored through the
store's own append statement (bench.recorders.BatchAppender); then a client
reads the whole SSE stream from `?after=0` (it ends after the terminal event),
and, separately, every `/history` page at the largest and at the default page
size. Median of several repeats.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson

from bench.context import BenchContext
from bench.procs import ChildProcess
from bench.seed import seed_tasks
from bench.sse_client import open_stream
from bench.stats import median


async def _sse_replay(api: ChildProcess, task_id: str) -> tuple[int, float]:
    began = time.time()
    stream = await open_stream(
        "127.0.0.1", api.port, f"/tasks/{task_id}/events?after=0", keep_frames=False
    )
    await asyncio.wait_for(stream.closed, timeout=120)
    return stream.event_count, time.time() - began


async def _history_replay(http: httpx.AsyncClient, task_id: str, limit: int) -> tuple[int, float]:
    began = time.monotonic()
    after, count = 0, 0
    while True:
        response = await http.get(
            f"/tasks/{task_id}/history", params={"after": after, "limit": limit}
        )
        response.raise_for_status()
        page = orjson.loads(response.content)
        count += len(page["events"])
        if not page["events"]:
            return count, time.monotonic() - began
        after = page["next_after"]


async def run(ctx: BenchContext) -> dict[str, Any]:
    total = ctx.sizes.replay_events
    began = time.monotonic()
    (task_id,) = await seed_tasks(ctx, 1, total, terminal=True)
    seeded = time.monotonic() - began
    api = ChildProcess("api", ctx.endpoints, ctx.log_dir)
    api.start()
    results: dict[str, list[tuple[int, float]]] = {"sse": [], "history_1000": [], "history_100": []}
    try:
        await asyncio.to_thread(api.wait_ready)
        async with httpx.AsyncClient(base_url=api.base_url, timeout=60) as http:
            await _history_replay(http, task_id, 1000)  # warm the API's and Postgres' caches
            for _ in range(ctx.sizes.replay_repeats):
                results["sse"].append(await _sse_replay(api, task_id))
                results["history_1000"].append(await _history_replay(http, task_id, 1000))
                results["history_100"].append(await _history_replay(http, task_id, 100))
    finally:
        api.stop()
    summary: dict[str, Any] = {
        "events": total,
        "seed_seconds": round(seeded, 2),
        "seed_events_per_s": round(total / seeded),
    }
    for name, runs in results.items():
        counts = {count for count, _ in runs}
        rates = [count / seconds for count, seconds in runs]
        summary[name] = {
            "events_read": sorted(counts),
            "median_seconds": round(median([s for _, s in runs]), 3),
            "median_events_per_s": round(median(rates)),
            "events_per_s": [round(rate) for rate in rates],
        }
        print(f"  replay {name:<13} {summary[name]['median_events_per_s']:>8} events/s")
    return summary
