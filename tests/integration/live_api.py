"""The real API app served by uvicorn inside the test's own event loop, on real servers.

In-process, so a test can count what the server holds — asyncio tasks, the
sockets (file descriptors) of its connections, the broker's subscriptions, the
stream gate — before and after, and wait for them to come back.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI
from redis.asyncio import Redis

from api.app import create_app
from api.listener import listening_socket
from api.services import Services
from api.stream_gate import StreamGate
from broker import BrokerStats
from settings import Settings
from tests.polling import until


@dataclass
class LiveApi:
    url: str
    port: int
    app: FastAPI
    client_name: str  # the prefix of this app's Redis connections in CLIENT LIST

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    @property
    def gate(self) -> StreamGate:
        gate: StreamGate = self.app.state.stream_gate
        return gate

    def broker_stats(self) -> BrokerStats:
        return self.services.broker.stats()


@asynccontextmanager
async def live_api(
    *,
    database_url: str,
    redis_url: str,
    temporal_address: str,
    send_buffer: int | None = None,
    **settings: Any,
) -> AsyncIterator[LiveApi]:
    """Serve `create_app` on a free port; `send_buffer` shrinks each accepted socket's SO_SNDBUF."""
    client_name = f"taskplane-test-{uuid.uuid4().hex[:8]}"
    config = Settings(
        database_url=database_url,
        redis_url=redis_url,
        temporal_address=temporal_address,
        redis_client_name=client_name,
        # A fixed pool: its connections are part of the baseline, never grown by a test.
        db_pool_min_size=4,
        db_pool_max_size=4,
        **settings,
    )
    app = create_app(config)
    # The production listener (`python -m api` makes the same one).
    sock = listening_socket("127.0.0.1", 0, user_timeout_seconds=config.sse_send_timeout_seconds)
    if send_buffer is not None:  # accepted sockets inherit it (and lose send autotuning)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, lifespan="on", timeout_graceful_shutdown=2)
    )
    serving = asyncio.create_task(_serve(server, sock))
    try:
        while not server.started:
            if serving.done():
                serving.result()
                raise RuntimeError("uvicorn stopped during startup")
            await asyncio.sleep(0.01)
        yield LiveApi(f"http://127.0.0.1:{port}", port, app, f"{client_name}-api")
    finally:
        server.should_exit = True
        await serving
        sock.close()


async def _serve(server: uvicorn.Server, sock: socket.socket) -> None:
    """`server.serve`, with uvicorn's `sys.exit(3)` on a failed lifespan startup turned into
    an ordinary error: a SystemExit escaping a test ends the whole pytest session (seen as
    an INTERNALERROR that aborted two full runs), while this fails the one test, with
    uvicorn's log of the startup failure captured in its report."""
    try:
        await server.serve(sockets=[sock])
    except SystemExit as exc:
        raise RuntimeError(
            f"the API failed to start (uvicorn exit {exc.code}): see its log"
        ) from None


def open_connections(port: int) -> int:
    """Sockets this process holds open for connections accepted on `port` (the server's side).

    Counted from /proc rather than as "all open fds": the test process also holds
    its clients, its fixtures' pools and whatever earlier tests left to the garbage
    collector, so its total moves for reasons that are not the API's.
    """
    accepted = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] != "0A":  # 0A: LISTEN
                    accepted.add(fields[9])  # the socket's inode
    held = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            held.add(target[8:-1])
    return len(accepted & held)


async def redis_connections(admin: Redis, name_prefix: str) -> list[dict[str, str]]:
    clients: list[dict[str, str]] = await admin.client_list()
    return [c for c in clients if c["name"].startswith(name_prefix)]


@dataclass(frozen=True)
class Footprint:
    """What a process holds for its streams; equal before and after means nothing leaked."""

    tasks: frozenset[asyncio.Task[Any]]
    connections: int  # accepted sockets still open (file descriptors of the server)
    streams: int
    subscribers: int
    topics: int
    redis_connections: int

    @classmethod
    async def of(cls, api: LiveApi, admin: Redis) -> Footprint:
        redis = len(await redis_connections(admin, api.client_name))
        stats = api.broker_stats()
        return cls(
            tasks=frozenset(_tasks()),
            connections=open_connections(api.port),
            streams=api.gate.open,
            subscribers=stats.subscribers,
            topics=stats.topics,
            redis_connections=redis,
        )

    def leftovers(self, now: Footprint) -> dict[str, object]:
        """What `now` holds beyond this footprint (empty when everything was released)."""
        found: dict[str, object] = {}
        extra_tasks = now.tasks - self.tasks
        if extra_tasks:
            found["tasks"] = sorted(task.get_name() for task in extra_tasks)
        for field in ("connections", "streams", "subscribers", "topics", "redis_connections"):
            if getattr(now, field) != getattr(self, field):
                found[field] = (getattr(self, field), getattr(now, field))
        return found


def _tasks() -> set[asyncio.Task[Any]]:
    current = asyncio.current_task()
    # sse-starlette's shutdown watcher is one per event loop and lives as long as it does.
    return {
        task
        for task in asyncio.all_tasks()
        if task is not current and "_shutdown_watcher" not in repr(task.get_coro())
    }


async def assert_released(baseline: Footprint, api: LiveApi, admin: Redis) -> None:
    """Wait until the process holds exactly what it held at `baseline`."""
    last: dict[str, object] = {}

    async def released() -> bool:
        nonlocal last
        last = baseline.leftovers(await Footprint.of(api, admin))
        return not last

    try:
        await until(released, within=10)
    except AssertionError:
        raise AssertionError(f"not released: {last}") from None
