"""`BulkOperationWorkflow` replays its stored histories (tests/replay/histories/bulk_*),
recorded by `python -m tests.replay.record_bulk_histories`; and a workflow that issues
other commands does not, so the check can fail."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from schemas.bulk import BULK_FINISH, BULK_WORKFLOW, BulkCounts, BulkStepInput, BulkWorkflowInput
from worker.temporal_worker import workflow_runner
from workflows.bulk import BULK_RETRY, BulkOperationWorkflow

HISTORIES = Path(__file__).parent.parent / "replay" / "histories"
BULK_HISTORIES = sorted(HISTORIES.glob("bulk_v*_*.json"))


@workflow.defn(name=BULK_WORKFLOW, sandboxed=False)
class SkipsTheSelection:
    """Finishes at once: not what BulkOperationWorkflow does."""

    @workflow.run
    async def run(self, state: BulkWorkflowInput) -> BulkCounts:
        counts: BulkCounts = await workflow.execute_activity(
            BULK_FINISH,
            BulkStepInput(bulk_id=state.bulk_id),
            result_type=BulkCounts,
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=BULK_RETRY,
        )
        return counts


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"replay-{path.stem}", json.loads(path.read_text()))


def test_there_are_bulk_histories() -> None:
    assert {p.stem.split("_", 2)[2] for p in BULK_HISTORIES} >= {"pages", "finish"}


@pytest.mark.parametrize("path", BULK_HISTORIES, ids=[p.stem for p in BULK_HISTORIES])
async def test_the_bulk_workflow_replays(path: Path) -> None:
    replayer = Replayer(
        workflows=[BulkOperationWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    await replayer.replay_workflow(load(path))


async def test_another_workflow_does_not_replay() -> None:
    replayer = Replayer(workflows=[SkipsTheSelection], data_converter=pydantic_data_converter)
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(load(HISTORIES / "bulk_v1_pages.json"))
