"""`python -m worker` with the `rollout.approval` type (tests/rollout_plugin.py)."""

from __future__ import annotations

import asyncio
import signal

from settings import get_settings
from telemetry import configure_logging
from tests.rollout_plugin import PLUGIN
from worker.runtime import WorkerRuntime


async def _main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with WorkerRuntime(settings, plugins=[PLUGIN]):
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(_main())
