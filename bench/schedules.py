"""`python -m bench.schedules`: how late a schedule's fires start their tasks, with and
without a worker restart (issue 24: "schedules fire within 1 s of their time across a
worker restart").

Its own servers (bench/stack.py), a real worker and API (`python -m worker`, `python -m
api`). One schedule, `every` 2 s (`--every`), of a one-step `demo.pipeline` task. For each fire:
`fire lag` = when Temporal started the schedule's run minus when it was due (the
schedule's action results), `task lag` = the task's `created_at` (its `task.created.v1`,
recorded by the worker) minus when it was due. Phases:

- `steady`: `--steady` seconds with the worker up (the baseline, same run);
- `restart`: the worker is stopped (SIGTERM, as a deploy does) and started again at
  once; fires due from the stop until the new worker's first task are `while_down`,
  fires due after that are `after_restart` (measured for `--after` seconds once the
  new worker started its first task).

Prints p50/p99/max per phase and the load average; writes bench/results/schedules.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.machine import load_average
from bench.procs import ChildProcess
from bench.stack import BenchServers
from bench.stats import summary_ms

OUT = Path(__file__).parent / "results" / "schedules.json"


class Fires:
    """Every fire of one schedule seen so far (recent runs keep only the last ten)."""

    def __init__(self, http: httpx.AsyncClient, schedule_id: str) -> None:
        self.http = http
        self.schedule_id = schedule_id
        self.runs: dict[str, dict[str, Any]] = {}

    async def poll(self) -> None:
        response = await self.http.get(f"/schedules/{self.schedule_id}")
        response.raise_for_status()
        for run in response.json()["recent_runs"]:
            if run["task_id"]:
                self.runs.setdefault(run["task_id"], run)

    async def follow(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await self.poll()
            await asyncio.sleep(0.3)

    async def until_started_after(self, moment: datetime) -> None:
        """Until a fire due after `moment` has its task started (a worker is back)."""
        while True:
            await self.poll()
            for task_id, run in self.runs.items():
                if datetime.fromisoformat(run["scheduled_at"]) <= moment:
                    continue
                task = await self.http.get(f"/tasks/{task_id}")
                if task.status_code == 200 and task.json()["status"] != "pending":
                    return
            await asyncio.sleep(0.3)

    async def measured(self) -> list[dict[str, Any]]:
        """Each fire with its due time, fire lag and task lag (waits for every task)."""
        rows = []
        for task_id, run in self.runs.items():
            deadline = time.monotonic() + 120
            while True:
                task = await self.http.get(f"/tasks/{task_id}")
                if task.status_code == 200 and task.json()["status"] != "pending":
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"task {task_id} of a fire never started")
                await asyncio.sleep(0.2)
            due = datetime.fromisoformat(run["scheduled_at"])
            started = datetime.fromisoformat(run["started_at"])
            created = datetime.fromisoformat(task.json()["created_at"])
            rows.append(
                {
                    "due": due,
                    "fire_lag": (started - due).total_seconds(),
                    "task_lag": (created - due).total_seconds(),
                    "created": created,
                }
            )
        return sorted(rows, key=lambda row: row["due"])


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "fires": len(rows),
        "fire_lag": summary_ms([r["fire_lag"] for r in rows]),
        "task_lag": summary_ms([r["task_lag"] for r in rows]),
    }


async def measure(api: ChildProcess, worker: ChildProcess, args: argparse.Namespace) -> Any:
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as http:
        body = {
            "id": "bench-every-second",
            "type": "demo.pipeline",
            "input": {"steps": 1, "step_seconds": 0},
            "every": args.every,
            "overlap": "allow_all",
        }
        (await http.post("/schedules", json=body)).raise_for_status()
        fires = Fires(http, body["id"])
        await fires.follow(args.steady)
        stopped = datetime.now(UTC)
        stop_began = time.monotonic()
        await asyncio.to_thread(worker.stop)
        stop_seconds = time.monotonic() - stop_began
        worker.start()
        await fires.until_started_after(stopped)
        await fires.follow(args.after)
        (await http.post(f"/schedules/{body['id']}/pause")).raise_for_status()
        rows = await fires.measured()
        steady = [r for r in rows if r["due"] < stopped]
        later = [r for r in rows if r["due"] >= stopped]
        back = min((r["created"] for r in later), default=None)
        while_down = [r for r in later if back is not None and r["due"] <= back]
        after = [r for r in later if back is not None and r["due"] > back]
        return {
            "steady": _summary(steady),
            "restart": {
                "worker_stop_seconds": round(stop_seconds, 2),
                "worker_back_after_seconds": round((back - stopped).total_seconds(), 2)
                if back
                else None,
                "while_down": _summary(while_down),
                "after_restart": _summary(after),
            },
        }


def render(report: dict[str, Any]) -> str:
    lines = [
        f"schedule fire lag (every {report['every']} s), load average {report['load_average']}"
    ]
    lines.append(f"{'phase':<16}{'fires':>6}  {'fire p50/p99 ms':>18}  {'task p50/p99/max ms':>24}")

    def row(name: str, part: dict[str, Any]) -> None:
        fire, task = part["fire_lag"], part["task_lag"]
        lines.append(
            f"{name:<16}{part['fires']:>6}  {fire['p50_ms']:>8.1f}/{fire['p99_ms']:<9.1f}"
            f"  {task['p50_ms']:>8.1f}/{task['p99_ms']:.1f}/{task['max_ms']:.1f}"
        )

    row("steady", report["steady"])
    restart = report["restart"]
    row("while down", restart["while_down"])
    row("after restart", restart["after_restart"])
    lines.append(
        f"worker stop took {restart['worker_stop_seconds']} s; its successor's first task"
        f" {restart['worker_back_after_seconds']} s after the stop began"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.schedules", description=__doc__)
    parser.add_argument("--steady", type=float, default=30.0, help="seconds before the restart")
    parser.add_argument(
        "--after", type=float, default=30.0, help="seconds measured once a worker is back"
    )
    parser.add_argument("--every", type=int, default=2, help="the schedule's interval, seconds")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    load_start = load_average()
    with BenchServers() as servers:
        endpoints = servers.start()
        api = ChildProcess("api", endpoints, servers.logs, log_level="WARNING")
        worker = ChildProcess(
            "worker", endpoints, servers.logs, task_queue=api.task_queue, log_level="WARNING"
        )
        worker.start()
        api.start()
        try:
            api.wait_ready()
            measured = asyncio.run(measure(api, worker, args))
        finally:
            api.stop()
            worker.stop()
    report = {
        "measured_at": datetime.now(UTC).isoformat(),
        "load_average": {"start": load_start, "end": load_average()},
        "every": args.every,
        **measured,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(render(report))


if __name__ == "__main__":
    main()
