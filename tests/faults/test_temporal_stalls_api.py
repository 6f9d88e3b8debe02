"""Temporal that stops answering (not refusing) → 503 problem+json with Retry-After.

A proxy between the API and the real Temporal server holds every byte while it is
stalled: connections stay open, calls get no answer. Every Temporal call the API
makes for a request has a deadline (`TASKPLANE_TEMPORAL_RPC_TIMEOUT_SECONDS`), so
the request answers 503 instead of hanging; once the bytes flow again, so does
the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from tests.integration.live_api import live_api

PIPELINE = {"type": "demo.pipeline", "input": {"steps": 1, "step_seconds": 0}}
RPC_TIMEOUT_SECONDS = 1.0


class StallingProxy:
    """TCP proxy whose pipes hold their bytes while `flowing` is clear."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while chunk := await source.read(65536):
                await self.flowing.wait()
                sink.write(chunk)
                await sink.drain()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers += [writer, up_writer]
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()


@asynccontextmanager
async def stalling_proxy(host: str, port: int) -> AsyncIterator[tuple[StallingProxy, int]]:
    proxy = StallingProxy(host, port)
    server = await asyncio.start_server(proxy.serve, "127.0.0.1", 0)
    try:
        yield proxy, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await proxy.close()


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["component"] == "Temporal"


async def test_the_api_answers_503_when_temporal_stops_answering(
    database_url: str, redis_url: str, temporal_address: str
) -> None:
    host, port = temporal_address.rsplit(":", 1)
    async with (
        stalling_proxy(host, int(port)) as (proxy, proxy_port),
        live_api(
            database_url=database_url,
            redis_url=redis_url,
            temporal_address=f"127.0.0.1:{proxy_port}",
            task_queue="nobody-serves-this-queue",  # the task stays pending: Temporal knows it
            temporal_rpc_timeout_seconds=RPC_TIMEOUT_SECONDS,
        ) as api,
        httpx.AsyncClient(base_url=api.url, timeout=120) as client,
    ):
        created = await client.post("/tasks", json=PIPELINE)
        assert created.status_code == 202, created.text
        task_id = created.json()["task_id"]

        proxy.flowing.clear()
        started = time.monotonic()
        _assert_unavailable(await client.get(f"/tasks/{task_id}"))
        _assert_unavailable(await client.post(f"/tasks/{task_id}/cancel"))
        _assert_unavailable(await client.post("/tasks", json=PIPELINE))
        # Three calls, each ended by its deadline, not by the client's 120 s.
        assert time.monotonic() - started < 60

        proxy.flowing.set()
        shown = await client.get(f"/tasks/{task_id}")
        assert shown.status_code == 200, shown.text
        assert shown.json()["status"] == "pending"
