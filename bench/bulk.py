"""`python -m bench.bulk [--tasks 200]`: how fast a bulk cancel acts on running tasks.

Starts its own Postgres, Redis and Temporal dev server and the real API and worker
processes, then for each variant creates `--tasks` long `demo.pipeline` tasks, waits
until all run, and cancels them:

- `one by one`: `POST /tasks/{id}/cancel` for each, one request at a time (what a
  client without bulk operations does);
- `one by one x8`: the same with 8 requests in flight (the bulk default concurrency);
- `bulk, rate 50/s`: one `POST /tasks/bulk` with the default settings
  (`TASKPLANE_BULK_RATE_PER_SECOND=50`, concurrency 8);
- `bulk, uncapped`: the same operation with the worker's rate cap at 10,000/s.

Per variant: tasks acted on per second (until the last 202, or until the operation is
`completed`: every task's cancel taken by its workflow) and until the store shows every
task `cancelled` (its `task.cancelled.v1` recorded). Baseline and bulk run in the same
run, one after another; the load average is in the report (`bench/results/bulk.json`).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.entry import run_bench
from bench.machine import load_average, machine_info
from bench.procs import ChildProcess, raise_open_files_limit
from bench.stack import BenchServers, Endpoints, server_versions

RESULTS = Path(__file__).parent / "results" / "bulk.json"
LONG = {"steps": 1, "step_seconds": 3600}
POLL_SECONDS = 0.05
RETRIES = 30


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bulk", description=__doc__)
    parser.add_argument("--tasks", type=int, default=200, help="tasks per variant (≤ 2000)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not 1 <= args.tasks <= 2000:
        parser.error("--tasks must be 1..2000")
    return args


async def _running(http: httpx.AsyncClient, count: int) -> list[str]:
    """Create `count` long tasks and wait until the store shows every one running."""
    gate = asyncio.Semaphore(8)

    async def one() -> str:
        async with gate:
            created = await http.post("/tasks", json={"type": "demo.pipeline", "input": LONG})
            created.raise_for_status()
            return str(created.json()["task_id"])

    task_ids = list(await asyncio.gather(*(one() for _ in range(count))))
    await _until_all(http, task_ids, "running", within=600)
    return task_ids


async def _until_all(
    http: httpx.AsyncClient, task_ids: list[str], status: str, within: float
) -> None:
    wanted = set(task_ids)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        seen: set[str] = set()
        cursor = None
        while True:
            params: dict[str, Any] = {"status": status, "limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = (await http.get("/tasks", params=params)).json()
            seen |= {task["task_id"] for task in page["tasks"]}
            cursor = page.get("next_cursor")
            if not cursor:
                break
        if wanted <= seen:
            return
        await asyncio.sleep(POLL_SECONDS * 10)
    raise RuntimeError(f"not every task {status} after {within} s")


async def _one_by_one(http: httpx.AsyncClient, task_ids: list[str], in_flight: int) -> float:
    gate = asyncio.Semaphore(in_flight)

    async def cancel(task_id: str) -> None:
        async with gate:
            for _ in range(RETRIES):
                answer = await http.post(f"/tasks/{task_id}/cancel")
                # As a client would: a workflow task failing for a while under load (the
                # deadlock detector at a load of 20) or no worker in time is retried.
                if answer.status_code == 202:
                    return
                if answer.status_code != 503 and "cannot be controlled now" not in answer.text:
                    break
                await asyncio.sleep(1)
            raise RuntimeError(f"cancel {task_id}: {answer.status_code} {answer.text}")

    started = time.monotonic()
    await asyncio.gather(*(cancel(t) for t in task_ids))
    return time.monotonic() - started


async def _bulk(http: httpx.AsyncClient, since: str, count: int) -> tuple[float, float]:
    """(seconds from the request to `completed` as the client saw it, and as the
    operation's own timestamps say)."""
    started = time.monotonic()
    accepted = await http.post(
        "/tasks/bulk",
        json={"action": "cancel", "filter": {"status": "running", "created_after": since}},
    )
    accepted.raise_for_status()
    bulk_id = accepted.json()["id"]
    while True:
        operation = (await http.get(f"/bulk/{bulk_id}")).json()
        if operation["status"] == "completed":
            break
        await asyncio.sleep(POLL_SECONDS)
    elapsed = time.monotonic() - started
    if (operation["matched"], operation["done"]) != (count, count):
        raise RuntimeError(f"bulk operation acted on the wrong tasks: {operation}")
    server = datetime.fromisoformat(operation["finished_at"]) - datetime.fromisoformat(
        operation["created_at"]
    )
    return elapsed, server.total_seconds()


async def _variant(api: ChildProcess, name: str, count: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=api.base_url, timeout=60) as http:
        since = datetime.now(UTC).isoformat()
        task_ids = await _running(http, count)
        load = load_average()
        started = time.monotonic()
        server_seconds = None
        if name.startswith("bulk"):
            acted, server_seconds = await _bulk(http, since, count)
        else:
            acted = await _one_by_one(http, task_ids, 8 if "x8" in name else 1)
        await _until_all(http, task_ids, "cancelled", within=600)
        ended = time.monotonic() - started
    row = {
        "variant": name,
        "tasks": count,
        "acted_seconds": round(acted, 2),
        "acted_per_second": round(count / acted, 1),
        "operation_seconds": server_seconds,
        "cancelled_seconds": round(ended, 2),
        "cancelled_per_second": round(count / ended, 1),
        "load_average": load,
    }
    print(
        f"{name:<18} {count:5d} tasks  acted {row['acted_per_second']:7.1f}/s"
        f"  cancelled in store {row['cancelled_per_second']:7.1f}/s  load {load[0]}",
        flush=True,
    )
    return row


async def _measure(endpoints: Endpoints, logs: Path, count: int) -> list[dict[str, Any]]:
    common = {"limit_task_create_per_second": "1000", "limit_task_create_burst": "5000"}
    rows: list[dict[str, Any]] = []
    for rate, variants in (
        ("50", ("one by one", "one by one x8", "bulk, rate 50/s")),
        ("10000", ("bulk, uncapped",)),
    ):
        worker = ChildProcess("worker", endpoints, logs, bulk_rate_per_second=rate, **common)
        api = ChildProcess("api", endpoints, logs, task_queue=worker.task_queue, **common)
        worker.start()
        api.start()
        try:
            api.wait_ready()
            for name in variants:
                rows.append(await _variant(api, name, count))
        finally:
            api.stop()
            worker.stop()
    return rows


def run(args: argparse.Namespace) -> dict[str, Any]:
    raise_open_files_limit()
    load_start = load_average()
    with BenchServers() as servers:
        endpoints = servers.start()
        versions = server_versions(endpoints)
        rows = asyncio.run(_measure(endpoints, servers.logs, args.tasks))
    baseline = rows[0]["acted_per_second"]
    for row in rows:
        row["acted_vs_one_by_one"] = round(row["acted_per_second"] / baseline, 2)
    return {
        "finished_at": datetime.now(UTC).isoformat(),
        "machine": machine_info(versions),
        "load_average": {"start": load_start, "end": load_average()},
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run_bench(
        lambda: run(args),
        lambda _report: args.out,
        lambda _report, out: print(f"results: {out}"),
    )


if __name__ == "__main__":
    main()
