"""Redis goes away mid-stream and comes back: the client keeps its stream and misses nothing.

While Redis is away the API stays ready (`/readyz` 200 `degraded`), the open
stream goes on from the store (polling), and a stream opened meanwhile works
too; when Redis is back both switch to live without a gap or a repeat.

The session's Redis is shared with every other test, so this one starts its
own throwaway `EmbeddedRedis` and points a separate in-process API app, and
its own recorder, at it. Postgres stays up throughout: events recorded while
Redis is down wait in the store (their outbox rows pending), and the stream
reads them from there once the broker has reconnected and re-subscribed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from activities.recorder import EventRecorder
from broker import BrokerStatus
from broker.redis import RedisBroker
from devstack import EmbeddedRedis
from devstack.ports import free_port
from store import EventStore, Outbox
from tests.integration.live_api import LiveApi, live_api
from tests.polling import until
from tests.sse_wire import Event, SSEConnection


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis", port=free_port(), log_path=tmp_path / "redis.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def readiness(api: LiveApi) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
        response = await http.get("/readyz")
    return response.status_code, response.json()


async def test_streams_survive_a_redis_restart_and_catch_up_from_the_store(
    throwaway_redis: EmbeddedRedis,
    pool: AsyncConnectionPool,
    database_url: str,
    temporal_address: str,
) -> None:
    publisher = RedisBroker(throwaway_redis.url, publish_timeout=0.3, client_name="test-restart")
    await publisher.connect()
    recorder = EventRecorder(EventStore(pool), Outbox(pool), publisher, publish_timeout=0.3)
    task_id = str(uuid.uuid4())

    async def record(event_type: str = "task.step.progress.v1", **data: Any) -> int:
        if event_type == "task.step.progress.v1":
            data = {"index": 1, "name": "step-1", "percent": 10.0}
        result = await recorder.record(
            event_id=str(uuid.uuid4()), task_id=task_id, event_type=event_type, data=data
        )
        return result.sequence

    try:
        async with live_api(
            database_url=database_url,
            redis_url=throwaway_redis.url,
            temporal_address=temporal_address,
            sse_heartbeat_seconds=0.2,
        ) as api:
            await record("task.created.v1", task_type="demo.pipeline", input={})
            for _ in range(2):
                await record()
            stream = await SSEConnection.open(f"{api.url}/tasks/{task_id}/events")
            received: list[Event] = []

            async def reader() -> None:
                while not stream.ended:
                    received.extend(await stream.read_events())

            reading = asyncio.create_task(reader())
            await until(_has(received, 3))
            resyncs = api.gate.counters.resync_heals

            throwaway_redis.stop()

            async def reported_degraded() -> bool:
                status, body = await readiness(api)
                return (
                    status == 200
                    and body["status"] == "degraded"
                    and body["checks"]["redis"]["status"] == "down"
                    and bool(body["impaired"])
                )

            await until(reported_degraded)
            assert api.services.broker.status() is not BrokerStatus.CONNECTED
            polls = api.gate.counters.store_polls
            while_down = [await record() for _ in range(3)]  # publish fails: outbox rows wait
            # The open stream reads them from the store while Redis is still away.
            await until(_has(received, while_down[-1]), within=10)
            assert api.gate.counters.store_polls > polls
            assert not stream.ended  # the client keeps its stream
            assert _sequences(received) == list(range(1, while_down[-1] + 1))
            # A stream opened now works too: history, then the store stands in for live.
            late = await SSEConnection.open(f"{api.url}/tasks/{task_id}/events")
            late_received: list[Event] = []

            async def late_reader() -> None:
                while not late.ended:
                    late_received.extend(await late.read_events())

            late_reading = asyncio.create_task(late_reader())
            await until(_has(late_received, while_down[-1]), within=10)
            during = await record()
            await until(_has(received, during), within=10)
            await until(_has(late_received, during), within=10)

            throwaway_redis.start()  # same port, same data folder

            async def ready_again() -> bool:
                return (await readiness(api))[0] == 200

            async def live_again() -> bool:
                _, body = await readiness(api)
                return bool(body["status"] == "ready")

            await until(ready_again, within=20)
            await until(live_again, within=20)
            assert api.gate.counters.resync_heals > resyncs
            assert api.broker_stats().reconnects >= 1

            await record()  # live again, through the re-established connection
            last = await record("task.completed.v1")
            await asyncio.wait_for(reading, 10)
            await asyncio.wait_for(late_reading, 10)
            assert _sequences(received) == list(range(1, last + 1))  # no gap, no repeat
            assert _sequences(late_received) == list(range(1, last + 1))
            assert received[-1].type == "task.completed.v1"
            await stream.close()
            await late.close()
    finally:
        await publisher.close()


def _sequences(events: list[Event]) -> list[int]:
    return [int(event.last_event_id) for event in events]


def _has(events: list[Event], sequence: int) -> Callable[[], Awaitable[bool]]:
    async def received_up_to() -> bool:
        return bool(events) and int(events[-1].last_event_id) >= sequence

    return received_up_to
