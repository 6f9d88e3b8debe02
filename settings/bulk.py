"""Bulk operation tuning (`TASKPLANE_BULK_*`), a section of its own beside `Settings`."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BulkSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TASKPLANE_BULK_", extra="ignore")

    # Tasks one worker acts on per second for one operation, and at most at once: a bulk
    # cancel of 100,000 tasks must not crowd out the tasks' own workflow tasks.
    rate_per_second: float = Field(default=50.0, gt=0)
    concurrency: int = Field(default=8, ge=1, le=100)
    # Task ids per selection page (read model → operation) and per acting activity.
    select_page_size: int = Field(default=1000, ge=1, le=10_000)
    act_page_size: int = Field(default=200, ge=1, le=10_000)
    # Pages one workflow run acts on before it continues as new (bounded history).
    pages_per_run: int = Field(default=100, ge=1)
    # An activity that sends no heartbeat this long (a worker SIGKILLed) is retried
    # elsewhere; set by the API into each operation's workflow input.
    heartbeat_timeout_seconds: float = Field(default=30.0, gt=0)
