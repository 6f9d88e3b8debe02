"""The worker process: a `WorkerRuntime` until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from settings import get_settings
from telemetry import configure_logging
from telemetry.exit import exit_now
from telemetry.metrics import MetricsPortTakenError
from telemetry.tracing import configure_tracing, shutdown_tracing
from temporal.runtime import SdkMetricsPortTakenError
from worker.runtime import WorkerRuntime

log = logging.getLogger(__name__)


async def _main() -> int:
    settings = get_settings()
    configure_logging(settings.log_level)
    configure_tracing(settings, component="worker")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with WorkerRuntime(settings):
            await stop.wait()
    except (MetricsPortTakenError, SdkMetricsPortTakenError) as exc:
        log.critical("worker not started: %s", exc)
        return 1
    return 0


def main() -> None:
    code = asyncio.run(_main())
    shutdown_tracing()
    exit_now(code)
