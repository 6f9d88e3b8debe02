"""Every stored history of earlier workflow versions replays with today's code.

The histories are recorded by `tests/replay/record_histories.py`. Replay needs
no server, so this is a unit test. `incompatible.json` comes from a different
workflow registered under the same name: replaying it must fail, which proves
the test can catch a non-deterministic change.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from worker.temporal_worker import workflow_runner
from workflows.debounce import DebounceWorkflow
from workflows.deferral import DeferralNoticeWorkflow
from workflows.scheduled import ScheduledTaskWorkflow
from workflows.task_workflow import TaskWorkflow

HISTORIES = Path(__file__).parent.parent / "replay" / "histories"
COMPATIBLE = sorted(p for p in HISTORIES.glob("v*_*.json"))


def load(path: Path) -> WorkflowHistory:
    """The history under its workflow's own id where it says it (a schedule's run derives
    its task id from it), else a made-up one."""
    history = json.loads(path.read_text())
    started = history["events"][0].get("workflowExecutionStartedEventAttributes", {})
    return WorkflowHistory.from_json(started.get("workflowId") or f"replay-{path.stem}", history)


def replayer() -> Replayer:
    return Replayer(
        workflows=[TaskWorkflow, DebounceWorkflow, ScheduledTaskWorkflow, DeferralNoticeWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )


def test_there_are_histories_of_every_scenario() -> None:
    names = {p.stem.split("_", 1)[1] for p in COMPATIBLE}
    assert {
        "completed",
        "failed",
        "paused_resumed",
        "cancelled_while_paused",
        "cancelled_natively",
        "cancelled_by_signal",
        "terminated",
        "reset",
        # wait_for_input (issue 18): an input delivered by update, a timeout, a cancel.
        "approval_approved",
        "approval_timed_out",
        "approval_cancelled_while_waiting",
        "controlled",
        "chat",
        # a schedule's run (issue 24): claims its task, runs it as a child
        "scheduled",
        # … with the schedule's concurrency key and priority (v14)
        "scheduled_flow",
        # a rate-limit deferral recorded as the task's event (v14)
        "deferral_notice",
        # debounce (issue 24, v11): a debounced task, and a debounce window.
        "debounced",
        "debounce_window",
        # concurrency keys (issue 24, v9): queued then admitted, cancelled while queued,
        # refused by cancel_newest.
        "queued_admitted",
        "cancelled_while_queued",
        "refused",
        # parked by the API, woken with Signal-With-Start (issue 24, v15)
        "parked_admitted",
    } <= names


@pytest.mark.parametrize("path", COMPATIBLE, ids=[p.stem for p in COMPATIBLE])
async def test_stored_history_replays_with_todays_code(path: Path) -> None:
    result = await replayer().replay_workflow(load(path))
    assert result.replay_failure is None


async def test_an_incompatible_history_is_rejected() -> None:
    with pytest.raises(NondeterminismError):
        await replayer().replay_workflow(load(HISTORIES / "incompatible.json"))
