"""The worker's CPU per workflow run, without servers: replay a stored history through a runner.

`python -m bench.replay_cpu [history.json] [--replays N] [--pairs P]` replays the history
N times through the sandbox (`worker.temporal_worker.workflow_runner`) and N times without
it (`UnsandboxedWorkflowRunner`), alternating P times in one process, and prints the
process CPU per replay of each (median and every pass). A replay runs the workflow's code
and the SDK's per-activation work (payload decoding, commands) as a live run does, minus
the polls and the server; the sandbox's per-run set-up is in it too (docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, WorkflowRunner

from bench.stats import median
from temporal.converter import data_converter
from worker.temporal_worker import workflow_runner
from workflows.task_workflow import TaskWorkflow

DEFAULT_HISTORY = Path("tests/replay/histories/v8_completed.json")


async def cpu_ms_per_replay(runner: WorkflowRunner, history: dict[str, Any], replays: int) -> float:
    replayer = Replayer(
        workflows=[TaskWorkflow], data_converter=data_converter, workflow_runner=runner
    )

    async def histories() -> AsyncIterator[WorkflowHistory]:
        for index in range(replays):
            yield WorkflowHistory.from_json(f"replay-{index}", history)

    started = time.process_time()
    async with replayer.workflow_replay_iterator(histories()) as results:
        async for result in results:
            if result.replay_failure is not None:
                raise result.replay_failure
    return (time.process_time() - started) * 1000 / replays


async def measure(path: Path, history: dict[str, Any], replays: int, pairs: int) -> dict[str, Any]:
    runners: dict[str, WorkflowRunner] = {
        "sandboxed": workflow_runner(),
        "unsandboxed": UnsandboxedWorkflowRunner(),
    }
    for runner in runners.values():  # imports and first-use costs out of the figures
        await cpu_ms_per_replay(runner, history, 3)
    passes: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(pairs):
        for name, runner in runners.items():
            passes[name].append(round(await cpu_ms_per_replay(runner, history, replays), 2))
    return {
        "history": str(path),
        "replays_per_pass": replays,
        "cpu_ms_per_replay": {
            name: {"median": round(median(values), 2), "passes": values}
            for name, values in passes.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("history", type=Path, nargs="?", default=DEFAULT_HISTORY)
    parser.add_argument("--replays", type=int, default=15)
    parser.add_argument("--pairs", type=int, default=6)
    args = parser.parse_args()
    history = json.loads(args.history.read_text())
    report = asyncio.run(measure(args.history, history, args.replays, args.pairs))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
