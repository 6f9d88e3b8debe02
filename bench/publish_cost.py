"""A lever of part 5: what one publish costs the recorder's thread, by how it is sent.

`script`: `RedisBroker.publish` as production sends it (one EVALSHA of
broker.redis_publish's script). `pipeline`: the same PUBLISH + XADD in a redis-py
non-transactional pipeline, as the broker sent them before session 11, through the same
client and timeout. `script_no_read_timeout`: the script through a client without
redis-py's per-read `socket_timeout` (a lever: only the outer `asyncio.timeout` bounds it).
Alternating rounds, each on a fresh loop in a thread of its own, so
`time.thread_time()` is the publishing alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from redis.asyncio import Redis

from bench.context import BenchContext
from bench.stats import median
from broker.redis import RedisBroker
from broker.redis_clients import command_client
from broker.redis_publish import PublishScript, publish_in_pipeline

KINDS = ("script", "script_no_read_timeout", "pipeline")
_TOPIC = "taskplane:bench:publish"
_PAYLOAD = orjson.dumps(
    {
        "specversion": "1.0",
        "id": "0b7e6a34-3f0e-4d43-9d55-8f4f5c1e2a10",
        "type": "task.step.progress.v1",
        "subject": "6f1d1c1e-8f5e-4b55-a0a4-9e7d3c2b1a00",
        "data": {"index": 1, "name": "step-1", "percent": 42.5, "message": "tick 17/40"},
        "sequence": 57,
    }
).decode()


async def _per_publish(ctx: BenchContext, kind: str, publishes: int) -> float:
    """CPU µs of one publish, `publishes` one after another."""
    url, stream = ctx.endpoints.redis_url, "taskplane:bench:publish-cost"
    broker = RedisBroker(url, stream_key=stream)
    await broker.connect()
    client = command_client(url, 1.0, "taskplane-bench")
    unbounded_reads = Redis.from_url(url)
    script = PublishScript(unbounded_reads, stream_key=stream, stream_maxlen=100_000)
    publish: Callable[[], Awaitable[Any]]
    if kind == "script":
        publish = lambda: broker.publish(_TOPIC, _PAYLOAD)  # noqa: E731
    elif kind == "script_no_read_timeout":

        async def publish() -> None:
            async with asyncio.timeout(1.0):
                await script([(_TOPIC, _PAYLOAD)])

    else:

        async def publish() -> None:
            async with asyncio.timeout(1.0):
                await publish_in_pipeline(
                    client, [(_TOPIC, _PAYLOAD)], stream_key=stream, stream_maxlen=100_000
                )

    try:
        for _ in range(100):  # connections open, script loaded
            await publish()
        cpu = time.thread_time()
        for _ in range(publishes):
            await publish()
        return (time.thread_time() - cpu) * 1e6 / publishes
    finally:
        await client.aclose()
        await unbounded_reads.aclose()
        await broker.close()


async def publish_cost(ctx: BenchContext) -> dict[str, Any]:
    publishes = 4 * ctx.sizes.lever_events
    runs: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for _ in range(ctx.sizes.lever_rounds):
        for kind in KINDS:
            run_one = _per_publish(ctx, kind, publishes)
            runs[kind].append(await asyncio.to_thread(asyncio.run, run_one))
    summary: dict[str, Any] = {"publishes_per_run": publishes, "rounds": ctx.sizes.lever_rounds}
    for kind, values in runs.items():
        summary[f"{kind}_cpu_us"] = round(median(values), 1)
    return summary
