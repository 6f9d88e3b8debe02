"""Stream hygiene on the real app, Postgres and Redis: caps, timeouts, and nothing left behind.

Each test runs the API in-process (`live_api`) so it can count, before and
after, the asyncio tasks, file descriptors, stream slots, fan-out
subscriptions and Redis connections the process holds. Clients are raw
sockets (`tests.sse_wire`), so they can stop reading or reset the connection.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis

from activities.recorder import EventRecorder
from broker import topic_for
from tests.integration.live_api import Footprint, LiveApi, assert_released, live_api
from tests.polling import until
from tests.sse_wire import Event, SSEConnection

BIG = "x" * 60_000  # one event of ~60 KB: a few fill the socket buffers of a stalled client


@pytest.fixture
def servers(database_url: str, redis_url: str, temporal_address: str) -> dict[str, Any]:
    return {
        "database_url": database_url,
        "redis_url": redis_url,
        "temporal_address": temporal_address,
    }


class Task:
    """A task whose events the test records itself, through the production recorder."""

    def __init__(self, recorder: EventRecorder) -> None:
        self.recorder = recorder
        self.id = str(uuid.uuid4())
        self.recorded = 0

    async def record(self, event_type: str = "task.step.progress.v1", **data: Any) -> int:
        defaults: dict[str, dict[str, Any]] = {
            "task.created.v1": {"task_type": "demo.pipeline", "input": {}},
            "task.step.progress.v1": {"index": 1, "name": "step-1", "percent": 50.0},
            "task.step.completed.v1": {"index": 1, "name": "step-1", "duration_seconds": 0.1},
            "task.completed.v1": {},
        }
        result = await self.recorder.record(
            event_id=str(uuid.uuid4()),
            task_id=self.id,
            event_type=event_type,
            data={**defaults[event_type], **data},
        )
        self.recorded = result.sequence
        return result.sequence

    async def record_big(self) -> int:
        return await self.record("task.step.completed.v1", output={"blob": BIG})

    @classmethod
    async def started(cls, recorder: EventRecorder) -> Task:
        task = cls(recorder)
        await task.record("task.created.v1")
        return task


async def read_until(connection: SSEConnection, last: int, within: float = 30) -> list[Event]:
    """Read events until sequence `last` arrived (or the stream ended)."""
    got: list[Event] = []
    async with asyncio.timeout(within):
        while not connection.ended and (not got or int(got[-1].last_event_id) < last):
            got.extend(await connection.read_events())
    return got


def sequences(events: list[Event]) -> list[int]:
    return [int(event.last_event_id) for event in events]


async def warm_up(api: LiveApi, task: Task) -> None:
    """One stream end to end, so what lives as long as the process (the pub/sub reader,
    sse-starlette's shutdown watcher) already exists when the baseline is taken."""
    connection = await SSEConnection.open(f"{api.url}/tasks/{task.id}/events")
    await read_until(connection, 1)
    await connection.close()
    await until(lambda: _zero(api))


async def _zero(api: LiveApi) -> bool:
    return api.gate.open == 0 and api.broker_stats().subscribers == 0


async def test_clients_that_vanish_release_everything_they_held(
    servers: dict[str, Any], recorder: EventRecorder, admin: Redis
) -> None:
    """Reset before the first byte, reset mid-stream, or close politely: all released."""
    async with live_api(**servers, sse_heartbeat_seconds=0.2) as api:
        tasks = [await Task.started(recorder) for _ in range(3)]
        await warm_up(api, tasks[0])
        baseline = await Footprint.of(api, admin)

        async def vanish(n: int) -> None:
            task = tasks[(n // 3) % len(tasks)]
            url = f"{api.url}/tasks/{task.id}/events"
            kind = n % 3
            if kind == 0:  # RST right after the request: before the first byte of the answer
                connection = await SSEConnection.open(url, read_head=False)
                await asyncio.sleep(random.uniform(0, 0.005))
                connection.reset()
                return
            connection = await SSEConnection.open(url)
            await read_until(connection, 1)
            await held.wait()
            if kind == 1:
                connection.reset()
            else:
                await connection.close()

        held = asyncio.Event()
        clients = [asyncio.create_task(vanish(n)) for n in range(30)]

        async def all_streaming() -> bool:
            return api.broker_stats().subscribers == 20 and api.gate.open == 20

        await until(all_streaming)
        assert api.broker_stats().topics == 3

        async def subscription_counts() -> set[int]:
            numsub = dict(await admin.pubsub_numsub(*(topic_for(t.id) for t in tasks)))
            return set(numsub.values())

        async def one_per_topic() -> bool:
            # Settles once a topic re-subscribed after a reset client left is confirmed.
            return await subscription_counts() == {1}

        await until(one_per_topic, within=5)
        assert await subscription_counts() == {1}  # ONE pub/sub subscription per topic
        for task in tasks:  # live events still flow to the clients that stay
            await task.record()
        held.set()
        await asyncio.gather(*clients)

        await assert_released(baseline, api, admin)

        async def unsubscribed() -> bool:
            counts = await admin.pubsub_numsub(*(topic_for(t.id) for t in tasks))
            return all(count == 0 for _, count in counts)

        await until(unsubscribed)


async def test_past_the_cap_a_stream_gets_503_problem_json_with_retry_after(
    servers: dict[str, Any], recorder: EventRecorder
) -> None:
    async with live_api(**servers, sse_max_streams=2) as api:
        task = await Task.started(recorder)
        url = f"{api.url}/tasks/{task.id}/events"
        first, second = [await SSEConnection.open(url) for _ in range(2)]
        assert (first.status, second.status) == (200, 200)

        refused = await SSEConnection.open(url)
        assert refused.status == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["retry-after"]) > 0
        problem = json.loads(refused.body)
        assert problem["status"] == 503
        assert "maximum of 2 streams" in problem["detail"]
        assert api.gate.counters.rejected == 1
        await refused.close()

        first.reset()

        async def slot_free() -> bool:
            return api.gate.open == 1

        await until(slot_free)
        third = await SSEConnection.open(url)
        assert third.status == 200
        assert sequences(await read_until(third, 1)) == [1]
        for connection in (second, third):
            await connection.close()


async def test_an_idle_stream_ends_cleanly_and_the_client_resumes(
    servers: dict[str, Any], recorder: EventRecorder
) -> None:
    async with live_api(
        **servers, sse_idle_timeout_seconds=0.6, sse_heartbeat_seconds=0.15, sse_retry_ms=250
    ) as api:
        task = await Task.started(recorder)
        url = f"{api.url}/tasks/{task.id}/events"
        connection = await SSEConnection.open(url)
        events = await read_until(connection, 1)
        async with asyncio.timeout(10):
            while not connection.ended:  # pings, then the end of the stream
                events.extend(await connection.read_events())
        assert sequences(events) == [1]
        assert connection.comments.count("ping") >= 2  # heartbeats while idle
        assert connection.parser.retry == 250  # EventSource's reconnection delay
        assert api.gate.counters.idle_timeouts == 1
        await connection.close()

        await task.record()
        resumed = await SSEConnection.open(url, {"Last-Event-ID": "1"})
        assert sequences(await read_until(resumed, 2)) == [2]
        await resumed.close()


async def test_a_client_that_stops_reading_is_dropped_after_the_send_timeout(
    servers: dict[str, Any], recorder: EventRecorder, admin: Redis
) -> None:
    async with live_api(
        **servers, send_buffer=8192, sse_send_timeout_seconds=1.0, sse_heartbeat_seconds=0.2
    ) as api:
        task = await Task.started(recorder)
        for _ in range(12):  # ~720 KB: far more than the socket buffers hold
            await task.record_big()
        await warm_up(api, task)
        baseline = await Footprint.of(api, admin)

        stalled = await SSEConnection.open(f"{api.url}/tasks/{task.id}/events", receive_buffer=4096)
        assert stalled.status == 200  # and then it never reads another byte

        async def dropped() -> bool:
            return api.gate.counters.send_timeouts > 0

        await until(dropped, within=15)

        # Everything released while the client still holds its end: the kernel aborted
        # the server's socket (TCP_USER_TIMEOUT), which uvicorn alone would keep open.
        await assert_released(baseline, api, admin)
        stalled.reset()


async def test_a_slow_reader_whose_queue_overflows_still_gets_every_event_once_in_order(
    servers: dict[str, Any], recorder: EventRecorder
) -> None:
    async with live_api(
        **servers, send_buffer=8192, sse_client_queue_size=1, sse_send_timeout_seconds=60
    ) as api:
        task = await Task.started(recorder)
        resyncs, dropped = api.gate.counters.resync_heals, api.broker_stats().dropped
        slow = await SSEConnection.open(f"{api.url}/tasks/{task.id}/events", receive_buffer=4096)
        assert sequences(await read_until(slow, 1)) == [1]
        # The client stops reading; big events block the server's send, small ones pile
        # up behind them in a queue of ONE: the queue overflows, the stream must heal.
        for n in range(30):
            await (task.record_big() if n % 3 == 0 else task.record())
        await task.record("task.completed.v1")
        await until(lambda: api.broker_stats().dropped > dropped, what="the queue to overflow")
        events = await read_until(slow, task.recorded)
        assert sequences(events) == list(range(2, task.recorded + 1))
        assert events[-1].type == "task.completed.v1"
        assert slow.ended or not await slow.read_events()
        assert api.broker_stats().dropped > dropped
        assert api.gate.counters.resync_heals > resyncs
        await slow.close()
