"""How the worker builds its `HandlerRunner` from settings, and stops it.

Split from worker/handlers.py: the runner itself knows neither `Settings` nor the
worker's shutdown; worker/runtime.py uses these two to fit it into the process.
"""

from __future__ import annotations

import asyncio
import logging

from broker import EventBroker
from broker.cancelling import cancel_until_done
from settings import Settings
from store.processed import ProcessedEvents
from telemetry.metrics import Metrics
from worker.event_handler import load_handlers
from worker.handlers import HandlerRunner, handler_seconds

log = logging.getLogger(__name__)


def build_handler_runner(
    broker: EventBroker,
    processed: ProcessedEvents,
    settings: Settings,
    metrics: Metrics | None = None,
) -> HandlerRunner:
    """The worker's runner, with the handlers `TASKPLANE_EVENT_HANDLERS` names (none by default)."""
    runner = HandlerRunner(
        broker,
        processed,
        claim_idle_seconds=settings.handler_claim_idle_seconds,
        max_deliveries=settings.handler_max_deliveries,
        block_seconds=settings.handler_block_seconds,
        seconds=handler_seconds(metrics) if metrics is not None else None,
        heal_margin_seconds=settings.handler_heal_margin_seconds,
    )
    if metrics is not None:
        runner.register_metrics(metrics)
    for handler in load_handlers(settings.event_handlers):
        runner.register(handler)
    return runner


async def stop_handlers(
    runner: HandlerRunner, running: asyncio.Task[None], *, grace_seconds: float = 10.0
) -> None:
    """Stop `runner` (see `HandlerRunner.stop`) and wait for it; cancel only as a last resort."""
    runner.stop()
    try:
        await asyncio.wait_for(asyncio.shield(running), grace_seconds)
    except TimeoutError:
        log.warning("durable handlers did not stop in time; cancelling them")
        await cancel_until_done([running])
