"""Record `BulkOperationWorkflow` histories for tests/unit/test_bulk_replay.py.

    .venv/bin/python -m tests.replay.record_bulk_histories [PREFIX]   # default bulk_v1

Runs the workflow on a Temporal dev server of its own (or `TASKPLANE_TEMPORAL_ADDRESS`)
with stand-in activities registered under the real names: the history holds the
workflow's commands, which is what replay checks, whatever the activities did.
Two scenarios: `pages` (select, pages until `pages_per_run`, continue-as-new) and
`finish` (a continued run: its last page, then finish). Record BEFORE changing the
workflow, as for the task workflow's histories.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import uuid
from pathlib import Path

from temporalio import activity
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from devstack import TemporalDevServer
from devstack.ports import free_port
from schemas.bulk import (
    BULK_ACT,
    BULK_FINISH,
    BULK_SELECT,
    BulkCounts,
    BulkPageResult,
    BulkStepInput,
    BulkWorkflowInput,
)
from worker.temporal_worker import workflow_runner
from workflows.bulk import BulkOperationWorkflow

HISTORIES = Path(__file__).parent / "histories"


class StandIns:
    def __init__(self, pages_left: int) -> None:
        self.pages_left = pages_left

    @activity.defn(name=BULK_SELECT)
    async def select(self, step: BulkStepInput) -> None:
        activity.heartbeat("2026-01-01T00:00:00+00:00", step.bulk_id)

    @activity.defn(name=BULK_ACT)
    async def act(self, step: BulkStepInput) -> BulkPageResult:
        self.pages_left -= 1
        return BulkPageResult(acted=5, remaining=max(self.pages_left, 0) * 5)

    @activity.defn(name=BULK_FINISH)
    async def finish(self, step: BulkStepInput) -> BulkCounts:
        return BulkCounts(matched=15, done=14, skipped=1, reasons={"skipped: is completed": 1})


async def record(address: str, prefix: str) -> None:
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    queue = f"record-bulk-{uuid.uuid4().hex[:8]}"
    stand_ins = StandIns(pages_left=3)
    async with Worker(
        client,
        task_queue=queue,
        workflows=[BulkOperationWorkflow],
        activities=[stand_ins.select, stand_ins.act, stand_ins.finish],
        workflow_runner=workflow_runner(),
    ):
        handle = await client.start_workflow(
            BulkOperationWorkflow.run,
            BulkWorkflowInput(bulk_id=str(uuid.uuid4()), heartbeat_seconds=5, pages_per_run=2),
            id=f"bulk-{uuid.uuid4()}",
            task_queue=queue,
        )
        await handle.result()  # follows the continue-as-new to the end
        first = client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
        (HISTORIES / f"{prefix}_pages.json").write_text((await first.fetch_history()).to_json())
        last = client.get_workflow_handle(handle.id)
        (HISTORIES / f"{prefix}_finish.json").write_text((await last.fetch_history()).to_json())


def main() -> None:
    prefix = sys.argv[1] if len(sys.argv) > 1 else "bulk_v1"
    address = os.environ.get("TASKPLANE_TEMPORAL_ADDRESS")
    if address:
        asyncio.run(record(address, prefix))
        return
    with tempfile.TemporaryDirectory() as folder:
        server = TemporalDevServer(
            Path(folder) / "temporal", port=free_port(), ui_port=None, log_path=None
        )
        address = server.start()
        try:
            asyncio.run(record(address, prefix))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
