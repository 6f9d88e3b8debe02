"""`python -m bench.redis_cluster [--quick]`: the Redis Cluster broker's figures.

On a local cluster of its own (devstack/redis_cluster.py: Debian's redis-server 7,
3 primaries + 3 replicas, `cluster-node-timeout` 2 s), with `RedisClusterBroker`:

1. cluster bus messages per event: N classic PUBLISHes, then N SPUBLISHes, from the
   `cluster_stats_messages_publish*_sent` counters summed over the nodes (and every
   bus message, background gossip included, for scale);
2. balance across primaries: task channels (uuid topics), partition streams, and the
   durable entries of `--tasks` tasks of 10 events published through the broker
   (largest / smallest per primary);
3. a primary killed (SIGKILL) while `--topics` live topics get an event every 20 ms:
   seconds until live delivery resumes on the dead primary's topics, until a durable
   consumer reads an entry of its partitions again, and the events each subscriber lost
   or saw twice after healing from the "store" (the publisher's own list of what it
   published, as the SSE layer heals from Postgres) on each resync notice.

Figures are printed as JSON with the load average; none is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson

from bench.machine import load_average
from broker import BrokerUnavailableError, topic_for
from broker.cluster_topology import ClusterTopology, cluster_client, slot_of
from broker.redis_cluster import RedisClusterBroker
from devstack.redis_cluster import LocalCluster, find_binaries, local_cluster
from schemas.examples import example_envelope

PUBLISH_COUNTERS = (
    "cluster_stats_messages_publish_sent",
    "cluster_stats_messages_publishshard_sent",
)


def bus_counters(cluster: LocalCluster) -> Counter[str]:
    total: Counter[str] = Counter()
    for node in cluster.nodes:
        if not node.process.running:
            continue
        with node.client() as client:
            info = client.cluster("info")
        for key, value in info.items():
            if key.startswith("cluster_stats_messages_") and key.endswith("_sent"):
                total[key] += int(str(value))
    return total


async def bus_messages(cluster: LocalCluster, events: int) -> dict[str, Any]:
    await asyncio.to_thread(cluster.wait_healthy)  # the bus settled: links and roles
    commands = cluster_client(cluster.url, timeout=2.0, client_name="bench-bus")
    results: dict[str, Any] = {"events": events}
    try:
        for kind in ("classic", "sharded"):
            before = bus_counters(cluster)
            started = time.monotonic()
            for n in range(events):
                channel = f"task.{uuid.uuid4()}"
                if kind == "classic":
                    await commands.publish(channel, f"event {n}")
                else:
                    await commands.spublish(channel, f"event {n}")
            after = bus_counters(cluster)
            delta = after - before
            publish = sum(delta[key] for key in PUBLISH_COUNTERS)
            results[kind] = {
                "publish_bus_messages_per_event": round(publish / events, 3),
                "all_bus_messages_per_event": round(
                    (after["cluster_stats_messages_sent"] - before["cluster_stats_messages_sent"])
                    / events,
                    3,
                ),
                "seconds": round(time.monotonic() - started, 3),
            }
    finally:
        await commands.aclose()
    return results


def ratio(counts: Counter[int]) -> float:
    largest, smallest = max(counts.values(), default=0), min(counts.values(), default=0)
    return round(largest / smallest, 3) if smallest else float("inf")


async def balance(cluster: LocalCluster, tasks: int, events: int, topics: int) -> dict[str, Any]:
    topology = ClusterTopology(cluster.url, timeout=2.0)
    await topology.refresh()

    def port_of(name: str) -> int:
        address = topology.primary_for(name)
        assert address is not None
        return address[1]

    channels = Counter(port_of(topic_for(str(uuid.uuid4()))) for _ in range(topics))
    broker = RedisClusterBroker(cluster.url, stream_key="bench:balance", client_name="bench-bal")
    await broker.connect()
    partitions = broker.partitions
    streams = Counter(port_of(partitions.key(index)) for index in partitions)
    try:
        for _ in range(tasks):
            topic = topic_for(str(uuid.uuid4()))
            for n in range(events):
                await broker.publish(topic, f"event {n}")
        commands = cluster_client(cluster.url, timeout=2.0, client_name="bench-bal")
        entries: Counter[int] = Counter()
        for index in partitions:
            key = partitions.key(index)
            entries[port_of(key)] += int(await commands.xlen(key))
        await commands.aclose()
    finally:
        await broker.close()
    return {
        "channels_per_primary": dict(channels),
        "channel_ratio": ratio(channels),
        "partitions_per_primary": dict(streams),
        "partition_ratio": ratio(streams),
        "entries_per_primary": dict(entries),
        "entry_ratio": ratio(entries),
        "tasks": tasks,
        "events_per_task": events,
    }


class HealingClient:
    """One subscriber that heals from the publisher's record on every resync notice."""

    def __init__(self, topic: str, store: dict[str, list[str]]) -> None:
        self.topic = topic
        self.store = store
        self.seen: list[str] = []
        self.live_after: Callable[[], float | None] = lambda: None
        self.first_live_after_kill: float | None = None
        self.resyncs = 0

    def heal(self) -> None:
        published = self.store[self.topic]
        position = published.index(self.seen[-1]) + 1 if self.seen else 0
        self.seen.extend(published[position:])

    def take(self, payload: str, kill_at: float | None) -> None:
        if kill_at is not None and self.first_live_after_kill is None:
            self.first_live_after_kill = time.monotonic() - kill_at
        published = self.store[self.topic]
        at = published.index(payload)
        last = published.index(self.seen[-1]) if self.seen else -1
        if at == last + 1 or at <= last:
            self.seen.append(payload)  # the next one, or a repeat (counted)
        else:
            self.heal()  # a gap the client noticed itself: read the store (it holds `payload`)


async def kill_primary(cluster: LocalCluster, topics: int, run_seconds: float) -> dict[str, Any]:
    broker = RedisClusterBroker(
        cluster.url, stream_key="bench:kill", client_name="bench-kill", publish_timeout=0.5
    )
    await broker.connect()
    store: dict[str, list[str]] = {}
    names = [topic_for(str(uuid.uuid4())) for _ in range(topics)]
    for name in names:
        store[name] = []
    clients = [HealingClient(name, store) for name in names]
    kill_at: float | None = None
    kill_epoch_ms = 0.0
    stop = asyncio.Event()
    durable_resume: list[float] = []
    victim_port = cluster.primary_serving(slot_of(names[0])).port
    victim = cluster.node(victim_port)
    on_victim = [
        c for c in clients if cluster.primary_serving(slot_of(c.topic)).port == victim_port
    ]

    template = example_envelope("task.created.v1")

    async def publisher() -> None:
        while not stop.is_set():
            for name in names:
                payload = orjson.dumps({**template, "id": str(uuid.uuid4())}).decode()
                store[name].append(payload)  # the store first, as the recorder does
                with contextlib.suppress(BrokerUnavailableError):
                    await broker.publish(name, payload)  # failed: the relay's, in production
            await asyncio.sleep(0.02)

    async def subscriber(client: HealingClient) -> None:
        async with broker.subscribe(client.topic) as subscription:
            ready.append(client)
            if len(ready) == len(clients):
                all_ready.set()
            while not stop.is_set():
                delivery = await subscription.get(timeout=0.2)
                if delivery is None:
                    continue
                if delivery.resync:
                    client.resyncs += 1
                    client.heal()
                elif delivery.payload is not None:
                    client.take(delivery.payload, kill_at if client in on_victim else None)

    async def durable() -> None:
        victim_partitions = {
            index
            for index in broker.partitions
            if cluster.primary_serving(slot_of(broker.partitions.key(index))).port == victim_port
        }
        async with broker.consume("bench", consumer="c", block_seconds=0.2) as consumer:
            async for message in consumer:
                with contextlib.suppress(BrokerUnavailableError):  # left pending: claimed again
                    await consumer.ack(message)
                index, _, stream_id = message.message_id.partition(":")
                written_ms = int(stream_id.partition("-")[0])
                if (
                    kill_at is not None
                    and not durable_resume
                    and int(index) in victim_partitions
                    and written_ms > kill_epoch_ms
                ):
                    durable_resume.append(time.monotonic() - kill_at)
                if stop.is_set():
                    return

    ready: list[HealingClient] = []
    all_ready = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        for client in clients:
            group.create_task(subscriber(client))
        await all_ready.wait()
        group.create_task(publisher())
        consuming = group.create_task(durable())
        await asyncio.sleep(1.0)
        kill_at, kill_epoch_ms = time.monotonic(), time.time() * 1000
        os.kill(victim.pid, signal.SIGKILL)
        await asyncio.sleep(run_seconds)
        stop.set()
        await asyncio.sleep(0.5)
        consuming.cancel()
    for client in clients:
        client.heal()  # what an SSE stream reads at its end
    lost = sum(len(set(store[c.topic]) - set(c.seen)) for c in clients)
    repeated = sum(len(c.seen) - len(set(c.seen)) for c in clients)
    resumed = [c.first_live_after_kill for c in on_victim if c.first_live_after_kill is not None]
    await broker.close()
    return {
        "topics": topics,
        "topics_on_victim": len(on_victim),
        "published": sum(len(v) for v in store.values()),
        "live_resume_seconds": round(max(resumed), 3) if len(resumed) == len(on_victim) else None,
        "durable_resume_seconds": round(durable_resume[0], 3) if durable_resume else None,
        "lost_at_clients": lost,
        "repeated_at_clients": repeated,
        "resync_notices": sum(c.resyncs for c in clients),
        "resync_notices_per_client": [c.resyncs for c in clients],
        "victim_clients": [clients.index(c) for c in on_victim],
        "reader_failures": broker.pubsub.reader_failures,
        "readers_replaced": broker.pubsub.readers_replaced,
        "topics_moved": broker.pubsub.resubscriptions,
        "node_timeout_ms": 2000,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    found = find_binaries()
    if isinstance(found, str):
        raise SystemExit(found)
    report: dict[str, Any] = {"load_average_start": load_average()}
    started = time.monotonic()
    with local_cluster(*found) as cluster:
        report["cluster_up_seconds"] = round(time.monotonic() - started, 2)
        report["bus"] = await bus_messages(cluster, args.events)
        report["balance"] = await balance(cluster, args.tasks, 10, args.channels)
    with local_cluster(*found) as cluster:
        report["primary_killed"] = await kill_primary(cluster, args.topics, args.run_seconds)
    report["load_average_end"] = load_average()
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.redis_cluster", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer events, a shorter run")
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--tasks", type=int, default=1200)
    parser.add_argument("--channels", type=int, default=30_000)
    parser.add_argument("--topics", type=int, default=30)
    parser.add_argument("--run-seconds", type=float, default=12.0)
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.tasks, args.channels, args.topics, args.run_seconds = (
            500, 100, 3000, 12, 8.0
        )  # fmt: skip
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
