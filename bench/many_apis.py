"""`python -m bench.many_apis [--quick]`: SSE clients over several API processes behind nginx.

Starts its own servers (`BenchServers`: Postgres with commit timestamps, Redis, the
Temporal dev server), three real API processes (`python -m api`, one stream token secret)
and nginx in front of them as `taskplane up --apis 3` renders it (devstack/nginx.py).
Seeds `--tasks` running tasks, then runs the same load in three rounds, in this order:

- `one API`: every client on API 1, directly (the baseline of the same run);
- `three APIs, direct`: the bench deals the clients round robin over the three APIs;
- `three APIs via nginx`: every client on nginx, which deals them out (round robin).

In each round `--clients` SSE clients (raw sockets, bench/sse_client.py) watch the tasks
(spread evenly), then events are recorded through the production `EventRecorder`
(Postgres + Redis, as a worker records them) at `--rate` a second, round robin over the
tasks, for `--seconds`. Figures per round: commit → SSE client latency (receipt minus
`pg_xact_commit_timestamp` of the event's transaction), deliveries (none may be missing),
and per API process its clients, its deliveries a second and its CPU over the window
(nginx's too). Which API served a proxied client comes from nginx's access log
(`upstream=`), each client carrying a query parameter of its own.

With `--cluster` the three rounds run twice in one run: first on the bench's one Redis,
then on a local Redis Cluster of its own (devstack/redis_cluster.py: 3 primaries + 3
replicas) with three fresh APIs (`TASKPLANE_REDIS_CLUSTER=true`, `TASKPLANE_REDIS_URL`
naming one node) and nginx in front of them; the recorder's broker comes from the same
factory the API and worker use (`broker.factory.make_broker`). Each round says its
`broker`.

On a 2-core machine shared with the servers, more APIs cannot make delivery faster; what
the figures show is whether the load spreads (clients and CPU per API) and what the proxy
costs. The JSON goes to `bench/results/many-apis[-cluster][-quick].json`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from psycopg_pool import AsyncConnectionPool

from activities.recorder import EventRecorder
from bench.latency import read_commit_times
from bench.machine import load_average, machine_info
from bench.procs import ChildProcess, raise_open_files_limit, tree_cpu_seconds
from bench.recorders import BatchAppender, build_envelope, mark_published
from bench.sse_client import Frame, SseConnection, open_stream
from bench.stack import BenchServers, Endpoints, server_versions
from bench.stats import summary_ms
from broker.factory import make_broker
from devstack.nginx import NginxProxy
from devstack.redis_cluster import LocalCluster, find_binaries, local_cluster
from settings import Settings
from store import EventStore, Outbox, open_pool

RESULTS = Path(__file__).parent / "results"
APIS = 3
OPEN_CONCURRENCY = 100
_UPSTREAM = re.compile(r"[?&]client=(\d+)\S* .* upstream=127\.0\.0\.1:(\d+)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.many_apis", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="300 clients, 5 s a round")
    parser.add_argument("--clients", type=int, help="SSE clients a round (default 1000)")
    parser.add_argument("--tasks", type=int, default=20, help="tasks the clients watch")
    parser.add_argument("--rate", type=float, default=50.0, help="events recorded a second")
    parser.add_argument("--seconds", type=float, help="recording window a round (default 20)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the servers' temp dir and logs")
    parser.add_argument(
        "--cluster", action="store_true", help="the rounds again on a local Redis Cluster"
    )
    args = parser.parse_args(argv)
    args.clients = args.clients or (300 if args.quick else 1000)
    args.seconds = args.seconds or (5.0 if args.quick else 20.0)
    name = "many-apis" + ("-cluster" if args.cluster else "") + ("-quick" if args.quick else "")
    args.out = args.out or RESULTS / f"{name}.json"
    return args


async def seed(pool: AsyncConnectionPool, tasks: int) -> list[str]:
    """Running tasks (a `task.created.v1` each) for the clients to watch."""
    task_ids = [str(uuid.uuid4()) for _ in range(tasks)]
    created = [
        build_envelope(
            str(uuid.uuid4()),
            task_id,
            "task.created.v1",
            {"task_type": "demo.pipeline", "input": {"steps": 1}},
        )
        for task_id in task_ids
    ]
    appended = await BatchAppender(pool).append_many(created)
    await mark_published(pool, [a.outbox_id for a in appended if a.outbox_id is not None])
    return task_ids


class Round:
    """One round's clients: connection `n` watches task `n % tasks` on `ports[n % len]`."""

    def __init__(self, name: str, ports: list[int], task_ids: list[str], clients: int) -> None:
        self.name = name
        self.ports = ports
        self.task_ids = task_ids
        self.clients = clients
        self.streams: dict[int, SseConnection] = {}  # client number → its stream
        self.failures = 0

    async def open(self) -> None:
        gate = asyncio.Semaphore(OPEN_CONCURRENCY)

        async def one(number: int) -> None:
            task_id = self.task_ids[number % len(self.task_ids)]
            port = self.ports[number % len(self.ports)]
            first: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            def on_frame(_: SseConnection, frame: Frame) -> None:
                if frame.is_event and not first.done():
                    first.set_result(None)

            async with gate:
                stream = await open_stream(
                    "127.0.0.1", port, f"/tasks/{task_id}/events?client={number}", on_frame=on_frame
                )
                try:
                    await asyncio.wait_for(first, timeout=60)
                except TimeoutError:
                    self.failures += 1
                    stream.close()
                    return
            self.streams[number] = stream

        await asyncio.gather(*(one(n) for n in range(self.clients)))

    def close(self) -> None:
        for stream in self.streams.values():
            stream.close()


async def record(recorder: EventRecorder, task_ids: list[str], rate: float, seconds: float) -> int:
    """Progress events at `rate` a second, round robin over the tasks, on a fixed schedule."""
    count = int(rate * seconds)
    began = time.monotonic()
    for tick in range(count):
        task_id = task_ids[tick % len(task_ids)]
        await recorder.record(
            event_id=str(uuid.uuid4()),
            task_id=task_id,
            event_type="task.step.progress.v1",
            data={"index": 1, "name": "step-1", "percent": 50.0, "total_steps": 1},
        )
        delay = began + (tick + 1) / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    return count


def served_by(access_log: Path, clients: int, before: int) -> dict[int, int]:
    """client number → API port, from the access log lines written after byte `before`."""
    with access_log.open("rb") as handle:
        handle.seek(before)
        text = handle.read().decode(errors="replace")
    found = {int(m[1]): int(m[2]) for m in _UPSTREAM.finditer(text)}
    return {n: port for n, port in found.items() if n < clients}


async def run_round(
    rnd: Round,
    *,
    apis: list[ChildProcess],
    proxy: NginxProxy,
    recorder: EventRecorder,
    pool: AsyncConnectionPool,
    args: argparse.Namespace,
) -> dict[str, Any]:
    log_offset = proxy.access_log.stat().st_size if proxy.access_log.exists() else 0
    await rnd.open()
    await asyncio.sleep(1)
    pids = {str(api.port): api.pid for api in apis}
    proxy_process = proxy.process
    if proxy_process is not None and proxy_process.pid is not None:
        pids["nginx"] = proxy_process.pid
    cpu = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}
    load_before = load_average()
    began = time.time()
    recorded = await record(recorder, rnd.task_ids, args.rate, args.seconds)
    recording = time.time() - began  # longer than asked when recording fell behind
    await asyncio.sleep(2)  # the last deliveries
    window = time.time() - began
    cpu = {name: tree_cpu_seconds(pid) - cpu[name] for name, pid in pids.items()}
    load_after = load_average()
    rnd.close()
    committed = await read_commit_times(pool, rnd.task_ids)
    latencies: list[float] = []
    per_client: dict[int, int] = {}
    for number, stream in rnd.streams.items():
        got = 0
        for frame in stream.frames:
            if not frame.is_event:
                continue
            envelope = orjson.loads(frame.data)
            if envelope["type"] != "task.step.progress.v1":
                continue
            got += 1
            at = committed.get((envelope["subject"], int(envelope["sequence"])))
            if at is not None:
                latencies.append(frame.received - at)
        per_client[number] = got
    ports = [api.port for api in apis]
    if rnd.ports == [proxy.port]:
        await asyncio.sleep(1)  # nginx logs a request when it ends
        mapping = served_by(proxy.access_log, rnd.clients, log_offset)
    else:
        mapping = {n: rnd.ports[n % len(rnd.ports)] for n in rnd.streams}
    clients_of = Counter(mapping.values())
    deliveries_of: Counter[int] = Counter()
    for number, got in per_client.items():
        deliveries_of[mapping.get(number, 0)] += got
    tasks = len(rnd.task_ids)
    expected = sum(recorded // tasks + (n % tasks < recorded % tasks) for n in rnd.streams)
    return {
        "round": rnd.name,
        "clients": len(rnd.streams),
        "failed_to_open": rnd.failures,
        "events_recorded": recorded,
        "events_per_s": round(recorded / recording, 1),
        "deliveries": sum(per_client.values()),
        "missing_deliveries": expected - sum(per_client.values()),
        "commit_to_client": summary_ms(latencies),
        "recording_seconds": round(recording, 2),
        "window_seconds": round(window, 2),  # recording + 2 s for the last deliveries
        "per_api": [
            {
                "api": index + 1,
                "clients": clients_of.get(port, 0),
                "deliveries_per_s": round(deliveries_of.get(port, 0) / recording, 1),
                "cpu_seconds": round(cpu[str(port)], 2),
                "cpu_share_of_a_core": round(cpu[str(port)] / window, 3),
            }
            for index, port in enumerate(ports)
        ],
        "nginx_cpu_seconds": round(cpu.get("nginx", 0.0), 2),
        # CPU per delivery over the window (idle pings and the broker's work included).
        "api_cpu_us_per_delivery": round(
            sum(cpu[str(port)] for port in ports) * 1e6 / max(sum(per_client.values()), 1), 1
        ),
        "nginx_cpu_us_per_delivery": round(
            cpu.get("nginx", 0.0) * 1e6 / max(sum(per_client.values()), 1), 1
        ),
        "load_average": {"before": load_before, "after": load_after},
    }


def print_round(result: dict[str, Any]) -> None:
    lat = result["commit_to_client"]
    apis = ", ".join(
        f"API {a['api']}: {a['clients']} clients {a['deliveries_per_s']}/s "
        f"CPU {a['cpu_share_of_a_core']:.2f}"
        for a in result["per_api"]
    )
    print(
        f"  {result['broker']:<13} {result['round']:<22} {result['clients']} clients,"
        f" p50 {lat['p50_ms']} ms,"
        f" p99 {lat['p99_ms']} ms, missing {result['missing_deliveries']}; {apis};"
        f" nginx CPU {result['nginx_cpu_seconds']} s; CPU/delivery API"
        f" {result['api_cpu_us_per_delivery']} µs, nginx {result['nginx_cpu_us_per_delivery']} µs;"
        f" load {result['load_average']['after'][0]}",
        flush=True,
    )


ONE_REDIS, REDIS_CLUSTER = "one Redis", "Redis Cluster"


async def measure(
    endpoints: Endpoints,
    log_dir: Path,
    args: argparse.Namespace,
    cluster: LocalCluster | None = None,
) -> dict[str, Any]:
    """The three rounds on the one Redis of `endpoints`, then again on `cluster` if given."""
    pool = await open_pool(endpoints.database_url, min_size=1, max_size=4)
    try:
        rounds = await measure_broker(endpoints, log_dir, args, pool, None)
        if cluster is not None:
            rounds += await measure_broker(endpoints, log_dir, args, pool, cluster.url)
        return {"rounds": rounds}
    finally:
        await pool.close()


async def measure_broker(
    endpoints: Endpoints,
    log_dir: Path,
    args: argparse.Namespace,
    pool: AsyncConnectionPool,
    cluster_url: str | None,
) -> list[dict[str, Any]]:
    """Three fresh APIs and nginx on one broker (the cluster at `cluster_url` if given)."""
    settings = {
        "sse_max_streams": str(args.clients + 100),
        "stream_token_secret": "b" * 32,
        "log_level": "WARNING",
    }
    if cluster_url is not None:
        settings |= {"redis_url": cluster_url, "redis_cluster": "true"}
    label = REDIS_CLUSTER if cluster_url is not None else ONE_REDIS
    suffix = "-cluster" if cluster_url is not None else ""
    apis = [ChildProcess("api", endpoints, log_dir, **settings) for _ in range(APIS)]
    proxy = NginxProxy(
        log_dir / f"nginx{suffix}",
        [("127.0.0.1", api.port) for api in apis],
        log_path=log_dir / f"nginx{suffix}.log",
    )
    broker = make_broker(
        Settings(
            redis_url=cluster_url or endpoints.redis_url, redis_cluster=cluster_url is not None
        ),
        client_name="bench-recorder",
    )
    await broker.connect()
    try:
        for api in apis:
            api.start()
        for api in apis:
            await asyncio.to_thread(api.wait_ready)
        proxy.start()
        recorder = EventRecorder(EventStore(pool), Outbox(pool), broker)
        rounds = []
        for name, ports in (
            ("one API", [apis[0].port]),
            ("three APIs, direct", [api.port for api in apis]),
            ("three APIs via nginx", [proxy.port]),
        ):
            task_ids = await seed(pool, args.tasks)
            result = await run_round(
                Round(name, ports, task_ids, args.clients),
                apis=apis,
                proxy=proxy,
                recorder=recorder,
                pool=pool,
                args=args,
            )
            result = {"round": name, "broker": label, **result}
            print_round(result)
            rounds.append(result)
            await asyncio.sleep(2)
        return rounds
    finally:
        proxy.stop()
        for api in apis:
            api.stop()
        await broker.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    raise_open_files_limit()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load_start = load_average()
    with BenchServers(keep=args.keep) as servers, contextlib.ExitStack() as stack:
        endpoints = servers.start()
        versions = server_versions(endpoints)
        cluster = None
        if args.cluster:
            found = find_binaries()
            if isinstance(found, str):
                raise SystemExit(found)
            cluster = stack.enter_context(local_cluster(*found))
        result = asyncio.run(measure(endpoints, servers.logs, args, cluster))
    report = {
        "started": started,
        "machine": machine_info(versions),
        "load_average": {"start": load_start, "end": load_average()},
        "settings": {
            "apis": APIS,
            "clients": args.clients,
            "tasks": args.tasks,
            "rate": args.rate,
            "seconds": args.seconds,
            "quick": args.quick,
            "brokers": [ONE_REDIS, REDIS_CLUSTER] if args.cluster else [ONE_REDIS],
        },
        **result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
