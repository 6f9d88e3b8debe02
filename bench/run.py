"""`python -m bench [--quick] [--parts ...]`: one bench run, a table, a JSON file.

Starts its own Postgres, Redis and Temporal dev server (devstack, free ports,
a temp dir) unless given all three endpoints, migrates, runs the parts in
order, prints a table and writes the JSON (machine, versions, load average at
start and end, every figure) to `bench/results/`.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    capacity,
    flow,
    latency,
    levers,
    lifecycle,
    output,
    rate_limits,
    replay,
    throughput,
)
from bench.context import BenchContext, Sizes
from bench.entry import run_bench
from bench.machine import load_average, machine_info
from bench.procs import raise_open_files_limit
from bench.report import render_table, targets, write_plot
from bench.stack import BenchServers, Endpoints, server_versions
from broker.redis import RedisBroker
from settings import Settings
from store import open_pool
from temporal.client import connect_client

PARTS = (
    "throughput",
    "latency",
    "replay",
    "capacity",
    "levers",
    "output",
    "lifecycle",
    "rate_limits",
    "flow",
)
RESULTS_DIR = Path(__file__).parent / "results"
DEFAULT_PLOT = Path(__file__).parent.parent / "docs" / "performance-latency.png"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="~1-minute smoke run")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}"
    )
    parser.add_argument("--out", type=Path, help="JSON path (default bench/results/<mode>.json)")
    parser.add_argument("--plot", type=Path, help=f"latency plot PNG (full runs: {DEFAULT_PLOT})")
    parser.add_argument("--database-url")
    parser.add_argument("--redis-url")
    parser.add_argument("--temporal-address")
    parser.add_argument(
        "--temporal-db",
        choices=("memory", "file"),
        default="memory",
        help="the dev server's SQLite: in memory (default) or a file as `make up` runs it",
    )
    parser.add_argument("--keep", action="store_true", help="keep the servers' temp dir and logs")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SIZE=VALUE",
        help="override one size, e.g. --set throughput_rounds=2 (see bench/context.py)",
    )
    args = parser.parse_args(argv)
    unknown = set(args.parts.split(",")) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {sorted(unknown)}")
    return args


async def run_parts(
    endpoints: Endpoints,
    *,
    parts: list[str],
    sizes: Sizes,
    log_dir: Path,
    server_pids: dict[str, int],
) -> dict[str, Any]:
    pool = await open_pool(endpoints.database_url, min_size=2, max_size=20)
    broker = RedisBroker(endpoints.redis_url)
    await broker.connect()
    settings = Settings(
        database_url=endpoints.database_url,
        redis_url=endpoints.redis_url,
        temporal_address=endpoints.temporal_address,
    )
    client = await connect_client(settings)
    ctx = BenchContext(endpoints, client, pool, broker, log_dir, sizes, server_pids)
    results: dict[str, Any] = {}
    modules = {
        "throughput": throughput,
        "latency": latency,
        "replay": replay,
        "capacity": capacity,
        "levers": levers,
        "output": output,
        "lifecycle": lifecycle,
        "rate_limits": rate_limits,
        "flow": flow,
    }
    try:
        for part in PARTS:
            if part in parts:
                print(f"== {part}", flush=True)
                began = time.monotonic()
                results[part] = await modules[part].run(ctx)
                results[part]["part_seconds"] = round(time.monotonic() - began, 1)
    finally:
        await broker.close()
        await pool.close()
    return results


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = (Sizes.quick() if args.quick else Sizes()).override(args.set)
    parts = [p for p in PARTS if p in args.parts.split(",")]
    open_files = raise_open_files_limit()
    started_at = datetime.now(UTC)
    load_start = load_average()
    began = time.monotonic()
    with BenchServers(keep=args.keep, temporal_db=args.temporal_db) as servers:
        given = (args.database_url, args.redis_url, args.temporal_address)
        if all(given):
            endpoints = Endpoints(*given)
            log_dir = Path(tempfile.mkdtemp(prefix="taskplane-bench-logs-"))
            servers.callback(shutil.rmtree, log_dir, ignore_errors=True)
            pids: dict[str, int] = {}
        else:
            endpoints = servers.start()
            log_dir = servers.logs
            pids = servers.pids()
        print(f"servers ready in {time.monotonic() - began:.1f} s; logs in {log_dir}", flush=True)
        versions = server_versions(endpoints)
        results = asyncio.run(
            run_parts(endpoints, parts=parts, sizes=sizes, log_dir=log_dir, server_pids=pids)
        )
    report: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "parts": parts,
        "started_at": started_at.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "wall_seconds": round(time.monotonic() - began, 1),
        "machine": machine_info(versions),
        "open_files_limit": open_files,
        "temporal_db": None if all(given) else args.temporal_db,
        "load_average": {"start": load_start, "end": load_average()},
        "sizes": dict(vars(sizes)),
        **results,
    }
    report["targets"] = targets(report)
    return report


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run_bench(
        lambda: run(args),
        lambda report: args.out or RESULTS_DIR / f"{report['mode']}.json",
        lambda report, out: _show(report, out, args.plot),
    )


def _show(report: dict[str, Any], out: Path, plot_arg: Path | None) -> None:
    print(render_table(report))
    if "output" in report:
        print("\n".join(output.render(report["output"])))
    if "flow" in report:
        print("\n".join(flow.render(report["flow"])))
    print(f"\nresults: {out}")
    plot = plot_arg or (DEFAULT_PLOT if report["mode"] == "full" else None)
    if plot is not None and "latency" in report and write_plot(report, plot):
        print(f"plot: {plot}")
