"""Helpers for the stream tests on real processes: extra API processes and their footprint."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from tests.e2e.conftest import ProcessStack


@contextmanager
def api_processes(
    services: Any, log_dir: Path, task_queue: str, *configs: dict[str, str]
) -> Iterator[list[ProcessStack]]:
    """More `python -m api` processes on the same servers, one per settings dict, each
    with its own Redis client name; started together, stopped together."""
    stacks = []
    for n, settings in enumerate(configs):
        folder = log_dir / f"api-{n}"
        folder.mkdir(parents=True, exist_ok=True)
        stacks.append(
            ProcessStack(
                services,
                folder,
                task_queue=task_queue,
                redis_client_name=f"taskplane-load-{uuid.uuid4().hex[:8]}",
                # A fixed pool: its connections are part of the baseline, never grown by load.
                db_pool_min_size="10",
                db_pool_max_size="10",
                **settings,
            )
        )
    try:
        for stack in stacks:
            stack.start("api")
        for stack in stacks:
            stack.wait_ready()
        yield stacks
    finally:
        for stack in stacks:
            stack.stop_all()


def metrics(text: str) -> dict[str, float]:
    """Prometheus text → {name: value}, labels dropped (ours carry only the OTel scope)."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name_and_labels, _, value = line.rpartition(" ")
            samples[name_and_labels.partition("{")[0]] = float(value)
    return samples


@dataclass(frozen=True)
class ProcessFootprint:
    """What one API process holds; the same before and after means nothing leaked."""

    asyncio_tasks: float
    streams: float
    subscribers: float
    topics: float
    # File descriptors other than the Postgres pool's connections: the pool keeps the
    # connections a load made it open for its idle time (minutes), a size, not a leak.
    fds: int
    redis_connections: int


async def footprint(api: ProcessStack, admin: Redis) -> ProcessFootprint:
    pid = api.processes["api"].pid
    fds = len(os.listdir(f"/proc/{pid}/fd"))  # before the scrape's own connection exists
    clients: list[dict[str, str]] = await admin.client_list()
    prefix = api.env["TASKPLANE_REDIS_CLIENT_NAME"]
    redis_connections = sum(1 for c in clients if c["name"].startswith(prefix))
    async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as http:
        sample = metrics((await http.get("/metrics")).text)
    return ProcessFootprint(
        asyncio_tasks=sample["taskplane_asyncio_tasks"],
        streams=sample["taskplane_sse_streams_open"],
        subscribers=sample["taskplane_broker_subscribers"],
        topics=sample["taskplane_broker_topics"],
        fds=fds - int(sample["taskplane_db_pool_size"]),
        redis_connections=redis_connections,
    )


async def counters(api: ProcessStack) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as http:
        return metrics((await http.get("/metrics")).text)
