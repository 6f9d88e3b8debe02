"""The loops `python -m worker` runs beside the Temporal worker, for the throughput bench.

The production worker also runs the outbox relay and the webhook dispatcher (and the
durable handlers `TASKPLANE_EVENT_HANDLERS` names: none by default). They compete with
the workflows for the same CPU, so the `taskplane_worker_loops` variant runs them in
the bench process to price them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from activities.recorder import EventRecorder
from bench.context import BenchContext
from settings import Settings
from webhooks.dispatcher import WebhookDispatcher
from worker.relay import build_recorder_and_relay


@dataclass
class WorkerLoops:
    recorder: EventRecorder


@contextlib.asynccontextmanager
async def worker_loops(ctx: BenchContext) -> AsyncIterator[WorkerLoops]:
    settings = Settings(
        database_url=ctx.endpoints.database_url,
        redis_url=ctx.endpoints.redis_url,
        temporal_address=ctx.endpoints.temporal_address,
    )
    recorder, relay = build_recorder_and_relay(settings, ctx.pool, ctx.broker)
    dispatcher = WebhookDispatcher.from_settings(ctx.pool, settings)
    loops = [
        asyncio.create_task(relay.run(settings.database_url), name="bench-relay"),
        asyncio.create_task(dispatcher.run(), name="bench-webhooks"),
    ]
    try:
        yield WorkerLoops(recorder)
    finally:
        for task in loops:
            task.cancel()
        for task in loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
