"""The combined stack of issue 25 (item 6): 3 APIs + 2 workers behind nginx on a Redis
Cluster of 3 primaries + 3 replicas (`TASKPLANE_REDIS_CLUSTER=true`), under faults in
sequence: a primary SIGKILLed mid-run, a primary SIGSTOPped for 10 s, `CLUSTER FAILOVER`,
an API SIGKILLed, a worker SIGKILLed.

In every phase tasks run with two SSE clients each through the proxy (spread over the
APIs), a webhook to a local receiver each, and both workers run a durable handler
(tests/faults/effects.py) in one consumer group over the partition streams. A client
whose stream is cut resumes by Last-Event-ID through the proxy. After each fault, checked
against the store (tests/invariants.py):

- every SSE client got every event of its task once, in order;
- the durable handler made one effect per event (docs/delivery.md; no order promised);
- the receiver took in every event each webhook subscribed to (one task per phase wants
  only some types), signed, in order per task once repeats of a `webhook-id` are dropped
  (docs/webhooks.md: at-least-once until acknowledged).

The API-kill phase kills the API that holds the most streams (read from its own
/metrics just before: at least one), keeps it down until every client finished, and
checks that exactly that many clients had to resume, so they finished on the others.
The stack has a database of its own: webhook deliveries are claimed by any worker of a
database, and the session's workers do not allow loopback receivers.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from broker import topic_for
from broker.cluster_streams import Partitions
from broker.cluster_topology import slot_of
from settings import Settings
from store import open_pool
from tests.faults.cluster_stream import ClusterStreamView
from tests.faults.effects import create_table, handled
from tests.invariants import Event, Observer, check_delivery, load_history, wait_until_delivered
from tests.nginx import ManyProcesses, many_processes
from tests.own_database import own_database_sync
from tests.polling import until
from tests.redis_cluster import LocalCluster, break_primary, own_cluster  # noqa: F401 -- fixture
from tests.sse import Frame, payload, read_frames
from tests.webhooks_support import Receiver, running_receiver, verified_payloads

pytestmark = pytest.mark.e2e

TASKS = 3
CLIENTS = 2
PIPELINE = {"steps": 3, "step_seconds": 1, "progress_ticks": 3}
GROUP = "cluster-stack-effects"
PARTITIONS = Settings.model_fields["redis_cluster_partitions"].default
SOME_TYPES = ["task.created.v1", "task.completed.v1"]  # what one webhook per phase wants


@pytest.fixture
def stack_db(database_url: str) -> Iterator[str]:
    with own_database_sync(database_url, "cluster_stack") as url:
        yield url


@pytest.fixture
async def store(stack_db: str) -> AsyncIterator[AsyncConnectionPool]:
    pool = await open_pool(stack_db, min_size=1, max_size=2)
    await create_table(pool)
    yield pool
    await pool.close()


@pytest.fixture
def combined(
    services: Any,
    own_cluster: LocalCluster,  # noqa: F811
    stack_db: str,
    store: AsyncConnectionPool,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ManyProcesses]:
    with many_processes(
        services,
        tmp_path_factory.mktemp("e2e-cluster-stack"),
        database_url=stack_db,
        redis_url=own_cluster.url,
        redis_cluster="true",
        sse_heartbeat_seconds="1",
        event_handlers="tests.faults.effects:handler",
        test_fault_group=GROUP,
        handler_claim_idle_seconds="1",
        webhook_allow_private_networks="true",
        webhook_retry_base_seconds="0.1",
        webhook_retry_max_seconds="1",
        webhook_poll_seconds="0.2",
        webhook_timeout_seconds="2",
        webhook_lease_seconds="5",
        webhook_max_attempts="10",
    ) as stack:
        yield stack


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as the_receiver:
        yield the_receiver


@dataclass
class Client:
    """One SSE client of one task: the events it read, and how many streams it opened."""

    task_id: str
    frames: list[Frame] = field(default_factory=list)
    streams: int = 0


async def follow(http: httpx.AsyncClient, client: Client) -> None:
    """The task's events through the proxy to its end, resuming by Last-Event-ID whenever
    the stream is cut (its API died)."""
    frames = client.frames
    while not frames or frames[-1].event != "task.completed.v1":
        headers = {"Last-Event-ID": frames[-1].id or "0"} if frames else {}
        try:
            async with http.stream(
                "GET", f"/tasks/{client.task_id}/events", headers=headers, timeout=120
            ) as response:
                assert response.status_code == 200
                client.streams += 1
                async for frame in read_frames(response):
                    if frame.is_event:
                        frames.append(frame)
        except httpx.HTTPError:
            await asyncio.sleep(0.2)  # the proxy moves to another API on the next request


@dataclass(frozen=True)
class Hook:
    """The webhook of one task: where the receiver took it, its secret, what it wants."""

    task_id: str
    path: str
    secret: str
    events: frozenset[str] | None


def webhook_view(receiver: Receiver, hook: Hook) -> Observer:
    """What the receiver took in for `hook`, signatures verified, repeats of a
    `webhook-id` dropped (the first kept): every wanted event once, in order."""
    firsts: dict[str, Event] = {}
    for body in verified_payloads(receiver.accepted(hook.path), hook.secret):
        firsts.setdefault(str(body["id"]), Event.from_envelope(body))
    return Observer(
        f"webhook of {hook.task_id[:8]}",
        list(firsts.values()),
        ordered=True,
        tasks=frozenset({hook.task_id}),
        event_types=hook.events,
    )


Fault = Callable[[list[str]], Awaitable[Callable[[], Awaitable[None]] | None]]


async def phase(
    http: httpx.AsyncClient,
    store: AsyncConnectionPool,
    receiver: Receiver,
    fault: Fault,
    name: str,
) -> list[Client]:
    """Tasks, their clients and webhooks; `fault(task_ids)` once every task runs (what it
    returns runs once every client finished); then the invariants for every observer."""
    hooks: list[Hook] = []
    for n in range(TASKS):
        path = f"/{uuid.uuid4().hex[:8]}"
        webhook: dict[str, Any] = {"url": receiver.at(path)}
        if n == 0:
            webhook["events"] = SOME_TYPES
        created = await http.post(
            "/tasks", json={"type": "demo.pipeline", "input": PIPELINE, "webhook": webhook}
        )
        assert created.status_code == 202, created.text
        body = created.json()
        wanted = frozenset(SOME_TYPES) if n == 0 else None
        hooks.append(Hook(body["task_id"], path, body["webhook"]["secret"], wanted))
    task_ids = [hook.task_id for hook in hooks]
    clients = [Client(task_id) for task_id in task_ids for _ in range(CLIENTS)]
    readers = [asyncio.create_task(follow(http, client)) for client in clients]

    async def all_running() -> bool:
        return len(await load_history(store, task_ids)) >= 2 * len(task_ids)

    await until(all_running, within=60, what=f"{name}: every task to run")
    after = await fault(task_ids)
    await asyncio.wait_for(asyncio.gather(*readers), timeout=120)
    if after is not None:
        await after()
    history = await load_history(store, task_ids)
    check_delivery(
        history,
        [
            Observer.sse(
                f"{name}: client {n} of {client.task_id[:8]}",
                client.task_id,
                [payload(f) for f in client.frames],
            )
            for n, client in enumerate(clients)
        ],
        tasks=task_ids,
    )

    async def collect() -> tuple[list[Event], list[Observer]]:
        observers = [Observer(f"{name}: handler", await handled(store, GROUP, task_ids))]
        observers.extend(webhook_view(receiver, hook) for hook in hooks)
        return await load_history(store, task_ids), observers

    await wait_until_delivered(collect, tasks=task_ids, within=60)
    return clients


async def test_the_combined_stack_delivers_every_event_once_in_order_through_faults(
    combined: ManyProcesses,
    own_cluster: LocalCluster,  # noqa: F811
    store: AsyncConnectionPool,
    receiver: Receiver,
) -> None:
    def primary_fault(kind: str) -> Fault:
        async def inject(task_ids: list[str]) -> None:
            victim = own_cluster.primary_serving(slot_of(topic_for(task_ids[0])))
            await asyncio.to_thread(break_primary, own_cluster, kind, victim)
            if kind == "sigkill":  # back as a replica, so the next fault has one to promote
                await asyncio.to_thread(own_cluster.restart, victim)
                await asyncio.to_thread(own_cluster.wait_healthy)

        return inject

    killed_streams: list[int] = []

    async def kill_api(task_ids: list[str]) -> Callable[[], Awaitable[None]]:
        everyone = TASKS * CLIENTS

        async def all_streaming() -> bool:
            return sum(await asyncio.to_thread(combined.streams_open)) == everyone

        await until(all_streaming, within=30, what="every client's stream to be open")
        open_now = await asyncio.to_thread(combined.streams_open)
        victim = open_now.index(max(open_now))
        # Its own gauge, read from the API itself (not through the proxy) just before.
        assert open_now[victim] >= 1, open_now
        killed_streams.append(open_now[victim])
        await asyncio.to_thread(combined.kill_api, victim)

        async def restart() -> None:  # only once every client finished on the others
            await asyncio.to_thread(combined.restart_api, victim)

        return restart

    async def kill_worker(task_ids: list[str]) -> None:
        victim = combined.workers[0]
        await asyncio.to_thread(victim.stop, "worker", kill=True)
        victim.start("worker")

    view = ClusterStreamView(own_cluster.url, Partitions("taskplane:events", PARTITIONS))
    try:
        await view.group_ready(GROUP, within=60)  # both workers' handlers read from the start
    finally:
        await view.close()
    async with httpx.AsyncClient(base_url=combined.url, timeout=30) as http:
        for name, fault in [
            ("sigkill primary", primary_fault("sigkill")),
            ("sigstop primary", primary_fault("sigstop")),
            ("cluster failover", primary_fault("failover")),
            ("sigkill api", kill_api),
            ("sigkill worker", kill_worker),
        ]:
            clients = await phase(http, store, receiver, fault, name)
            if fault is kill_api:
                # The clients of the killed API, and only they, resumed elsewhere.
                resumed = [c for c in clients if c.streams > 1]
                assert len(resumed) == killed_streams[0], (killed_streams, resumed)
