"""Process configuration, read once from `TASKPLANE_*` environment variables.

Connection URLs are optional here because `taskplane up` fills in the ones that
are unset with the embedded servers it starts; the API and the worker ask for
them through the `require_*` methods, which fail loudly instead of letting a
`None` travel into a driver.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigurationError(RuntimeError):
    """A setting a process needs is missing or unusable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TASKPLANE_", extra="ignore")

    database_url: str | None = None
    redis_url: str | None = None
    temporal_address: str | None = None
    temporal_namespace: str = "default"
    task_queue: str = "taskplane"

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    temporal_port: int = Field(default=7233, ge=0, le=65535)
    temporal_ui_port: int = Field(default=8233, ge=0, le=65535)

    # Where the local stack keeps its servers' data; git-ignored.
    state_dir: Path = Path(".taskplane")

    # Event path tuning.
    publish_timeout_seconds: float = Field(default=1.0, gt=0)
    outbox_grace_seconds: float = Field(default=2.0, ge=0)
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    outbox_batch_size: int = Field(default=100, ge=1)
    broker_stream_maxlen: int = Field(default=100_000, ge=1)

    # SSE tuning.
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0)
    sse_client_queue_size: int = Field(default=256, ge=1)
    sse_history_page_size: int = Field(default=500, ge=1, le=1000)
    # Stream hygiene: a stream with no event for this long ends (the client resumes
    # with Last-Event-ID); past the cap new streams get 503; a client that takes no
    # bytes for the send timeout is dropped; `retry:` tells EventSource when to reconnect.
    sse_idle_timeout_seconds: float = Field(default=300.0, gt=0)
    sse_max_streams: int = Field(default=5000, ge=1)
    sse_send_timeout_seconds: float = Field(default=30.0, gt=0)
    sse_retry_ms: int = Field(default=2000, ge=0)

    # Redis: the CLIENT SETNAME prefix of this process's connections (`-publish`, `-pubsub`, …).
    redis_client_name: str = "taskplane"

    # Durable event handlers in the worker: `module:attribute` paths to
    # `worker.handlers.EventHandler` objects, comma-separated (none by default).
    event_handlers: str = ""
    handler_claim_idle_seconds: float = Field(default=30.0, gt=0)
    handler_max_deliveries: int = Field(default=5, ge=1)

    # Worker: how long SIGTERM waits for running activities; 0 cached workflows
    # makes every workflow task replay from history (a determinism check).
    worker_shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    worker_max_cached_workflows: int = Field(default=1000, ge=0)

    db_pool_min_size: int = Field(default=1, ge=1)
    db_pool_max_size: int = Field(default=10, ge=1)

    log_level: str = "INFO"

    def require_database_url(self) -> str:
        return _required(self.database_url, "TASKPLANE_DATABASE_URL")

    def require_redis_url(self) -> str:
        return _required(self.redis_url, "TASKPLANE_REDIS_URL")

    def require_temporal_address(self) -> str:
        return _required(self.temporal_address, "TASKPLANE_TEMPORAL_ADDRESS")


def _required(value: str | None, name: str) -> str:
    if not value:
        raise ConfigurationError(f"{name} is not set (run `taskplane up`, or point it at a server)")
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
