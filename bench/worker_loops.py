"""The loops `python -m worker` runs beside the Temporal worker, for the throughput bench.

The production worker also runs the outbox relay, the durable handler runner
with the built-in `webhooks` handler (it reads every event from the broker's
stream and marks it processed, whether or not any task has a webhook) and the
webhook sender. They compete with the workflows for the same CPU, so the
`taskplane_worker_loops` variant runs them in the bench process to price them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from activities.recorder import EventRecorder
from bench.context import BenchContext
from settings import Settings
from store.processed import ProcessedEvents
from store.webhooks import WebhookStore
from worker.handlers import HandlerRunner, stop_handlers
from worker.relay import build_recorder_and_relay
from worker.webhooks import start_webhooks


@dataclass
class WorkerLoops:
    recorder: EventRecorder
    handlers: HandlerRunner


@contextlib.asynccontextmanager
async def worker_loops(ctx: BenchContext) -> AsyncIterator[WorkerLoops]:
    settings = Settings(
        database_url=ctx.endpoints.database_url,
        redis_url=ctx.endpoints.redis_url,
        temporal_address=ctx.endpoints.temporal_address,
    )
    recorder, relay = build_recorder_and_relay(settings, ctx.pool, ctx.broker)
    handlers = HandlerRunner(
        ctx.broker,
        ProcessedEvents(ctx.pool),
        claim_idle_seconds=settings.handler_claim_idle_seconds,
        max_deliveries=settings.handler_max_deliveries,
    )
    webhook_handler, sender = start_webhooks(WebhookStore(ctx.pool), settings)
    handlers.register(webhook_handler)
    running_handlers = asyncio.create_task(handlers.run(), name="bench-handlers")
    others = [
        asyncio.create_task(relay.run(settings.database_url), name="bench-relay"),
        asyncio.create_task(sender.run(), name="bench-webhooks"),
    ]
    try:
        yield WorkerLoops(recorder, handlers)
    finally:
        await stop_handlers(handlers, running_handlers)
        for task in others:
            task.cancel()
        for task in others:
            with contextlib.suppress(asyncio.CancelledError):
                await task
