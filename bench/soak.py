"""`python -m bench.soak [--minutes 10] [--rate 5]`: a bounded soak under short retention.

Starts its own Postgres, Redis and Temporal dev server (loopback only: Postgres on
a Unix socket, the others on 127.0.0.1, free ports, a temp dir), the real API and
worker processes with retention shortened (closed tasks kept `--keep-closed` s,
published outbox rows `--keep-outbox` s, tombstones `--keep-tombstones` s, a
pruning round every `--prune-interval` s) and the Redis stream capped at
`--stream-maxlen` entries, then creates `demo.pipeline` tasks through the API at
`--rate` a second for `--minutes` (never more than `MAX_TASKS`, never more than
`--max-open` open at once: when the machine cannot keep up, the rate held is what
the report says). Every `--sample-seconds` it samples the database (total and by
table, bytes and rows), the API's and worker's RSS, Redis's memory and stream
length and the load average; the report compares the first half of the run with
the last (bench/soak_report.py) and goes to `bench/results/soak.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis

from bench import dbsize, drive
from bench.entry import run_bench
from bench.machine import load_average, machine_info
from bench.procs import ChildProcess, raise_open_files_limit, rss_kib
from bench.soak_report import render, summarise
from bench.stack import BenchServers, Endpoints, server_versions
from store import open_pool
from store.partitions import PartitionPolicy

RESULTS = Path(__file__).parent / "results" / "soak.json"
MAX_MINUTES = 120.0
MAX_RATE = 50.0
MAX_TASKS = 100_000
STREAM_KEY = "taskplane:events"
_PARTITIONS = "SELECT count(*), min(lower_bound) FROM taskplane_event_partitions"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=5.0, help="tasks created a second")
    parser.add_argument("--steps", type=int, default=3, help="demo.pipeline steps a task")
    parser.add_argument("--sample-seconds", type=float, default=15.0)
    parser.add_argument("--keep-closed", type=float, default=60.0)
    parser.add_argument("--keep-outbox", type=float, default=30.0)
    parser.add_argument("--keep-tombstones", type=float, default=120.0)
    parser.add_argument("--prune-interval", type=float, default=5.0)
    parser.add_argument(
        "--partition-seconds",
        type=float,
        default=None,
        help="width of the events partitions (default: the setting's, a day)",
    )
    parser.add_argument("--stream-maxlen", type=int, default=5000)
    parser.add_argument("--max-open", type=int, default=500, help="open tasks before pausing")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the servers' temp dir and logs")
    args = parser.parse_args(argv)
    if not 0 < args.minutes <= MAX_MINUTES:
        parser.error(f"--minutes must be in (0, {MAX_MINUTES}]")
    if not 0 < args.rate <= MAX_RATE:
        parser.error(f"--rate must be in (0, {MAX_RATE}]")
    return args


class Soak:
    def __init__(self, args: argparse.Namespace, endpoints: Endpoints, log_dir: Path) -> None:
        self.args = args
        self.endpoints = endpoints
        retention = {
            "retention_closed_tasks_seconds": str(args.keep_closed),
            "retention_outbox_published_seconds": str(args.keep_outbox),
            "retention_tombstones_seconds": str(args.keep_tombstones),
            "retention_interval_seconds": str(args.prune_interval),
            "broker_stream_maxlen": str(args.stream_maxlen),
            "log_level": "WARNING",
        }
        if args.partition_seconds is not None:  # narrow partitions, so the soak drops some
            retention["partition_interval_seconds"] = str(args.partition_seconds)
            retention["partition_ahead_seconds"] = str(args.partition_seconds * 3)
        self.api = ChildProcess("api", endpoints, log_dir, **retention)
        self.worker = ChildProcess(
            "worker", endpoints, log_dir, task_queue=self.api.task_queue, **retention
        )
        self.submitted = 0
        self.failed_submits = 0
        self.paused_seconds = 0.0
        self.samples: list[dict[str, Any]] = []

    async def run(self) -> dict[str, Any]:
        for child in (self.worker, self.api):
            child.start()
        pool = await open_pool(self.endpoints.database_url, min_size=1, max_size=4)
        redis = aioredis.Redis.from_url(self.endpoints.redis_url)
        try:
            await asyncio.to_thread(self.api.wait_ready)
            await asyncio.sleep(2)
            began = time.monotonic()
            duration = self.args.minutes * 60
            sampler = asyncio.create_task(self._sample_every(pool, redis, began, duration))
            async with httpx.AsyncClient(base_url=self.api.base_url, timeout=30) as http:
                await self._drive(http, pool, began, duration)
            await sampler
            drained = await self._drain(pool)
        finally:
            for child in (self.api, self.worker):
                child.stop()
            await redis.aclose()
            await pool.close()
        return {"drain_seconds": drained, "samples": self.samples}

    async def _drive(
        self, http: httpx.AsyncClient, pool: Any, began: float, duration: float
    ) -> None:
        """Open loop: task i is due at i / rate after the start; behind schedule, it goes
        at once. A pause (too many open) moves the schedule on: no burst after it."""
        body = drive.pipeline(self.args.steps)
        limit = min(MAX_TASKS, int(self.args.rate * duration))
        in_flight: set[asyncio.Task[None]] = set()
        while self.submitted < limit:
            due = began + self.paused_seconds + self.submitted / self.args.rate
            now = time.monotonic()
            if now - began >= duration:
                break
            if due > now:
                await asyncio.sleep(due - now)
            if self.submitted % 25 == 0 and await drive.open_tasks(pool) >= self.args.max_open:
                paused = time.monotonic()
                while True:  # until half of them closed
                    if await drive.open_tasks(pool) < self.args.max_open // 2:
                        break
                    await asyncio.sleep(0.5)
                self.paused_seconds += time.monotonic() - paused
            task = asyncio.create_task(self._submit(http, body))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            self.submitted += 1
        await asyncio.gather(*in_flight)

    async def _submit(self, http: httpx.AsyncClient, body: dict[str, Any]) -> None:
        try:
            await drive.submit(http, body)
        except httpx.HTTPError:
            self.failed_submits += 1

    async def _drain(self, pool: Any, limit_seconds: float = 120.0) -> float | None:
        began = time.monotonic()
        while await drive.open_tasks(pool):
            if time.monotonic() - began > limit_seconds:
                return None
            await asyncio.sleep(1)
        return round(time.monotonic() - began, 1)

    async def _sample_every(
        self, pool: Any, redis: aioredis.Redis, began: float, duration: float
    ) -> None:
        while True:
            await self._sample(pool, redis, began)
            if time.monotonic() - began >= duration:
                return
            await asyncio.sleep(self.args.sample_seconds)

    async def _sample(self, pool: Any, redis: aioredis.Redis, began: float) -> None:
        async with pool.connection() as conn:
            size = await dbsize.measure(conn)
            parts = await (await conn.execute(_PARTITIONS)).fetchone()
        memory = await redis.info("memory")
        sample: dict[str, Any] = {
            "t": round(time.monotonic() - began, 1),
            "submitted": self.submitted,
            "open": await drive.open_tasks(pool),
            "database_bytes": size.database_bytes,
            # events partitions now, and the oldest one's lower bound (retention drops them)
            "event_partitions": int(parts[0]) if parts else 0,
            "oldest_partition": str(parts[1]) if parts and parts[1] else None,
            "tables": {
                name: {"bytes": t.total_bytes, "rows": t.rows} for name, t in size.tables.items()
            },
            "api_rss_kib": rss_kib(self.api.pid),
            "worker_rss_kib": rss_kib(self.worker.pid),
            "redis_used_memory": int(memory["used_memory"]),
            "redis_stream_length": int(await redis.xlen(STREAM_KEY)),
            "load_average": load_average(),
        }
        self.samples.append(sample)
        print(
            f"  t={sample['t']:6.0f}s submitted {self.submitted:6d} open {sample['open']:4d}"
            f"  db {size.database_bytes / 2**20:7.1f} MiB parts {sample['event_partitions']:3d}"
            f"  api {sample['api_rss_kib'] / 1024:6.1f} MiB"
            f"  worker {sample['worker_rss_kib'] / 1024:6.1f} MiB"
            f"  redis {sample['redis_used_memory'] / 2**20:6.1f} MiB"
            f" xlen {sample['redis_stream_length']:6d}  load {sample['load_average'][0]}",
            flush=True,
        )


def run(args: argparse.Namespace) -> dict[str, Any]:
    raise_open_files_limit()
    started_at = datetime.now(UTC)
    load_start = load_average()
    partitions = None
    if args.partition_seconds is not None:
        width = args.partition_seconds
        partitions = PartitionPolicy(interval_seconds=width, ahead_seconds=width * 3)
    with BenchServers(keep=args.keep, partitions=partitions) as servers:
        endpoints = servers.start()
        print(f"servers up; logs in {servers.logs}", flush=True)
        versions = server_versions(endpoints)
        soak = Soak(args, endpoints, servers.logs)
        measured = asyncio.run(soak.run())
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "keep")}
    report: dict[str, Any] = {
        "started_at": started_at.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "settings": settings,
        "machine": machine_info(versions),
        "load_average": {"start": load_start, "end": load_average()},
        "submitted": soak.submitted,
        "failed_submits": soak.failed_submits,
        "paused_seconds": round(soak.paused_seconds, 1),
        **measured,
    }
    report["summary"] = summarise(report)
    return report


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run_bench(lambda: run(args), lambda _report: args.out, _show)


def _show(report: dict[str, Any], out: Path) -> None:
    print(render(report))
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
