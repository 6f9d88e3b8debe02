"""500 SSE clients on 20 running tasks: every client gets every event exactly once, in order.

Real processes on real servers: the session's worker runs the tasks; two
extra API processes serve the streams — A with per-client queues of ONE
message, so its clients overflow and heal from the store all the time; B
with the default queues. Clients, on raw sockets (`tests.sse_wire`):

- plain: read from the first event to the end;
- slow: a tiny receive window and a pause after every read;
- resuming: start from a `Last-Event-ID` in the middle;
- reconnecting: drop the connection (FIN or RST) after a few events, one to
  three times, and come back with `Last-Event-ID` — on the OTHER process.

Meanwhile the broker is made to repeat itself: bursts of already-delivered
events, published back to back, which the streams must drop as duplicates
(and which overflow A's queues at once). Afterwards both API processes must
hold exactly what they held before: asyncio tasks, streams, fan-out
subscriptions, file descriptors, Redis connections; and Redis no subscriber.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from broker import topic_for
from schemas.registry import is_terminal
from tests.e2e.conftest import ProcessStack
from tests.e2e.streams_support import ProcessFootprint, api_processes, counters, footprint
from tests.sse_wire import SSEConnection

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(170)]

log = logging.getLogger(__name__)

TASKS = 20
CLIENTS_PER_TASK = 25
TASK_INPUT = {"steps": 4, "step_seconds": 1.2, "progress_ticks": 8}


@dataclass
class Client:
    index: int
    task_id: str
    kind: str
    start_after: int = 0
    drops: list[int] = field(default_factory=list)  # disconnect after this many events
    received: list[tuple[int, str, str]] = field(default_factory=list)  # (seq, type, data)
    refusals: int = 0  # 503 + Retry-After answers (overload), retried after the pause
    connections: int = 0
    ended_with_204: bool = False


def plan_clients(task_ids: list[str], rng: random.Random) -> list[Client]:
    kinds = ["plain"] * 14 + ["slow"] * 4 + ["resuming"] * 2 + ["reconnecting"] * 5
    assert len(kinds) == CLIENTS_PER_TASK
    clients: list[Client] = []
    for task_id in task_ids:
        for kind in kinds:
            client = Client(len(clients), task_id, kind)
            if kind == "resuming":
                client.start_after = rng.randint(1, 8)
            if kind == "reconnecting":
                client.drops = sorted(rng.sample(range(1, 30), rng.randint(1, 3)))
            clients.append(client)
    return clients


async def watch(client: Client, apis: list[str]) -> None:
    """Follow the task to its end as a well-behaved EventSource user would."""
    last = client.start_after
    drops = list(client.drops)
    while True:
        api = apis[(client.index + client.connections) % len(apis)]  # alternate processes
        client.connections += 1
        headers = {"Last-Event-ID": str(last)} if last else {}
        slow = client.kind == "slow"
        connection = await SSEConnection.open(
            f"{api}/tasks/{client.task_id}/events", headers, receive_buffer=2048 if slow else None
        )
        if connection.status == 204:
            client.ended_with_204 = True
            await connection.close()
            return
        if connection.status == 503 and "retry-after" in connection.headers:
            # Overload (on a starved machine, no pooled connection within the pool's
            # timeout): the API says when to come back, as clients are told to (the JS
            # client and the CLI do). Streams stay exactly-once across it.
            client.refusals += 1
            await connection.close()
            await asyncio.sleep(min(float(connection.headers["retry-after"]), 1.0))
            continue
        assert connection.status == 200, (connection.status, connection.body)
        dropped = False
        while not connection.ended and not dropped:
            for event in await connection.read_events():
                assert event.type != "error", (client.kind, client.index, event.data)
                last = int(event.last_event_id)
                client.received.append((last, event.type, event.data))
                if drops and len(client.received) >= drops[0]:
                    drops.pop(0)
                    dropped = True
                    break
            if slow:
                await asyncio.sleep(0.05)
        if dropped and client.index % 2:
            connection.reset()
        else:
            await connection.close()
        if not dropped and client.received and is_terminal(client.received[-1][1]):
            # A browser reconnects once more after the end; the 204 tells it to stop.
            continue


async def repeat_bursts(http: httpx.AsyncClient, admin: Redis, task_ids: list[str]) -> int:
    """The broker repeating itself: stored events published again, ten copies back to back,
    in one pipeline, so they reach each API process in one read — past any queue of one."""
    for task_id in task_ids:
        events = (await http.get(f"/tasks/{task_id}/history", params={"limit": 3})).json()
        async with admin.pipeline(transaction=False) as pipe:
            for _ in range(10):
                for event in events["events"]:
                    pipe.publish(topic_for(task_id), compact(event))
            await pipe.execute()
        await asyncio.sleep(0.05)
    return len(task_ids)


def compact(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))


async def settled(api: ProcessStack, admin: Redis, baseline: ProcessFootprint) -> ProcessFootprint:
    """The footprint once it stopped changing back towards `baseline` (or after 20 s)."""
    deadline = time.monotonic() + 20
    while True:
        now = await footprint(api, admin)
        if now == baseline or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.25)


async def steady(api: ProcessStack, admin: Redis) -> ProcessFootprint:
    """The footprint once two readings in a row agree (the warm-up has let go)."""
    previous = await footprint(api, admin)
    deadline = time.monotonic() + 20
    while True:
        await asyncio.sleep(0.25)
        now = await footprint(api, admin)
        if now == previous or time.monotonic() > deadline:
            return now
        previous = now


async def create_tasks(
    http: httpx.AsyncClient, count: int, task_input: dict[str, Any]
) -> list[str]:
    task_ids = []
    for _ in range(count):
        created = await http.post("/tasks", json={"type": "demo.pipeline", "input": task_input})
        assert created.status_code == 202, created.text
        task_ids.append(created.json()["task_id"])
    return task_ids


async def first_event_recorded(http: httpx.AsyncClient, task_id: str) -> None:
    """Until then the task is only in Temporal, and every stream would ask Temporal."""
    deadline = time.monotonic() + 30
    while not (await http.get(f"/tasks/{task_id}/history", params={"limit": 1})).json()["events"]:
        assert time.monotonic() < deadline, f"{task_id} recorded nothing"
        await asyncio.sleep(0.05)


async def stored_events(http: httpx.AsyncClient, task_id: str) -> list[tuple[int, str, str]]:
    page = (await http.get(f"/tasks/{task_id}/history", params={"limit": 1000})).json()
    assert page["events"][-1]["type"] == "task.completed.v1"
    return [(e["sequence"], e["type"], compact(e)) for e in page["events"]]


def assert_exactly_once_in_order(client: Client, stored: list[tuple[int, str, str]]) -> None:
    want = [event for event in stored if event[0] > client.start_after]
    assert [(seq, kind) for seq, kind, _ in client.received] == [
        (seq, kind) for seq, kind, _ in want
    ], (client.kind, client.index)
    for (_, _, data), (_, _, text) in zip(client.received, want, strict=True):
        assert json.loads(data) == json.loads(text)
    assert client.ended_with_204, (client.kind, client.index)


COUNTED = ("sse_heals", "sse_resync_heals", "sse_gap_heals", "sse_duplicates_dropped")


async def test_500_clients_on_20_tasks_get_every_event_exactly_once_in_order(
    stack: ProcessStack, services: Any, tmp_path: Path, redis_url: str
) -> None:
    rng = random.Random(5)
    queue = stack.env["TASKPLANE_TASK_QUEUE"]
    admin = Redis.from_url(redis_url, decode_responses=True)
    http = httpx.AsyncClient(base_url=stack.base_url, timeout=30)
    with api_processes(services, tmp_path, queue, {"sse_client_queue_size": "1"}, {}) as apis:
        urls = [api.base_url for api in apis]
        # Warm-up: what lives as long as a process (its pub/sub reader, sse-starlette's
        # shutdown watcher) must exist before the baseline is taken.
        (warm,) = await create_tasks(http, 1, {"steps": 1, "step_seconds": 0})
        for url in urls:
            await watch(Client(1, warm, "plain"), [url])
        baselines = [await steady(api, admin) for api in apis]
        before = [await counters(api) for api in apis]

        task_ids = await create_tasks(http, TASKS, TASK_INPUT)
        for task_id in task_ids:
            await first_event_recorded(http, task_id)
        clients = plan_clients(task_ids, rng)
        started = time.monotonic()
        watchers = [asyncio.create_task(watch(client, urls)) for client in clients]
        await asyncio.sleep(1.0)
        bursts = await repeat_bursts(http, admin, task_ids)
        await asyncio.gather(*watchers)
        took = time.monotonic() - started

        stored = {task_id: await stored_events(http, task_id) for task_id in task_ids}
        for client in clients:
            assert_exactly_once_in_order(client, stored[client.task_id])

        for api, baseline in zip(apis, baselines, strict=True):
            assert await settled(api, admin, baseline) == baseline
        counts = await admin.pubsub_numsub(*(topic_for(t) for t in task_ids))
        assert [n for _, n in counts] == [0] * TASKS
        after = [await counters(api) for api in apis]
    await http.aclose()
    await admin.aclose()

    figures = {
        f"{'AB'[i]}.{name}": after[i].get(f"taskplane_{name}_total", 0.0)
        - before[i].get(f"taskplane_{name}_total", 0.0)
        for i in range(2)
        for name in (*COUNTED, "broker_dropped")
    }
    log.warning(
        "load: %d clients, %d events delivered, %d reconnects (%d refused: 503), %d bursts,"
        " %.1f s; %s",
        len(clients),
        sum(len(c.received) for c in clients),
        sum(c.connections - 1 for c in clients),
        sum(c.refusals for c in clients),
        bursts,
        took,
        figures,
    )
    # A's queues hold one message: the bursts overflowed them, and the streams healed.
    assert figures["A.broker_dropped"] > 0
    assert figures["A.sse_resync_heals"] > 0
