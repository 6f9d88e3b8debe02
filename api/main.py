"""`python -m api`: uvicorn serving the app on TASKPLANE_API_HOST:TASKPLANE_API_PORT."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from types import FrameType

import uvicorn

from api.app import create_app
from api.listener import listening_socket
from api.stream_ticker import StreamTicker
from settings import get_settings
from telemetry import configure_logging
from telemetry.exit import exit_now
from telemetry.tracing import configure_tracing, shutdown_tracing


class StreamsClosingServer(uvicorn.Server):
    """On SIGTERM/SIGINT, end the open SSE streams at once (their clients reconnect),
    instead of letting them hold the graceful shutdown until it times out."""

    def __init__(self, config: uvicorn.Config, ticker: StreamTicker) -> None:
        super().__init__(config)
        self._ticker = ticker

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # A signal handler: hand the work to the event loop's thread.
        with contextlib.suppress(RuntimeError):  # no loop running (yet)
            asyncio.get_event_loop().call_soon_threadsafe(self._ticker.shutdown)


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level)
    configure_tracing(settings, component="api")
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,  # keep our logging configuration
        timeout_graceful_shutdown=5,
    )
    # Our own socket, so a client that stops reading cannot hold it open: see api/listener.py.
    sock = listening_socket(
        settings.api_host, settings.api_port, user_timeout_seconds=settings.sse_send_timeout_seconds
    )
    server = StreamsClosingServer(config, app.state.stream_ticker)
    # Modules, schemas, routes: everything built so far lives as long as the process.
    # Out of the collector's sight, a full collection no longer rescans it while
    # thousands of streams open (docs/performance.md, "Idle stream memory (session 9)").
    gc.collect()
    gc.freeze()
    server.run(sockets=[sock])
    shutdown_tracing()
    exit_now(0 if server.started else 3)
