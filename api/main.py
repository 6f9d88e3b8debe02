"""`python -m api`: uvicorn serving the app on TASKPLANE_API_HOST:TASKPLANE_API_PORT."""

from __future__ import annotations

import uvicorn

from api.app import create_app
from api.listener import listening_socket
from settings import get_settings
from telemetry import configure_logging
from telemetry.exit import exit_now
from telemetry.tracing import configure_tracing, shutdown_tracing


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level)
    configure_tracing(settings, component="api")
    config = uvicorn.Config(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,  # keep our logging configuration
        timeout_graceful_shutdown=5,
    )
    # Our own socket, so a client that stops reading cannot hold it open: see api/listener.py.
    sock = listening_socket(
        settings.api_host, settings.api_port, user_timeout_seconds=settings.sse_send_timeout_seconds
    )
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    shutdown_tracing()
    exit_now(0 if server.started else 3)
