"""`python -m api`: uvicorn serving the app on TASKPLANE_API_HOST:TASKPLANE_API_PORT."""

from __future__ import annotations

import uvicorn

from api.app import create_app
from settings import get_settings
from telemetry import configure_logging
from telemetry.exit import exit_now


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,  # keep our logging configuration
        timeout_graceful_shutdown=5,
    )
    exit_now(0)
