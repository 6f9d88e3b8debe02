"""What the reconciler decides about one closed run, without any I/O.

Which Temporal close statuses mean a run ended with no Taskplane code to record it,
how visibility spells them, whether the store still lacks that run's ending, and
which terminal event (type and data) records it. Pure, so the decisions read (and
can be tested) apart from the reconciler's rounds, locks and calls in
worker/reconciler.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio.client import WorkflowExecutionStatus

from schemas import cap_optional_text
from store.chapters import TaskChapter


@dataclass(frozen=True, slots=True)
class ClosedRun:
    task_id: str
    run_id: str
    status: WorkflowExecutionStatus


ENDINGS = (
    WorkflowExecutionStatus.TERMINATED,
    WorkflowExecutionStatus.TIMED_OUT,
    WorkflowExecutionStatus.FAILED,
    WorkflowExecutionStatus.CANCELED,
)
VISIBILITY_NAMES = {
    WorkflowExecutionStatus.TERMINATED: "Terminated",
    WorkflowExecutionStatus.TIMED_OUT: "TimedOut",
    WorkflowExecutionStatus.FAILED: "Failed",
    WorkflowExecutionStatus.CANCELED: "Canceled",
}


def needs_ending(chapter: TaskChapter | None, run_id: str) -> bool:
    """Whether the store lacks the ending of `run_id`: open (or pending: closed before its
    first event), or closed in an older chapter. No trace of it: not this store's task."""
    if chapter is None:
        return False
    if not chapter.closed:
        return True
    return chapter.run_id is not None and chapter.run_id != run_id


def ending_event(
    run: ClosedRun, close_status: str, reason: str | None, identity: str | None
) -> tuple[str, dict[str, Any]]:
    if run.status is WorkflowExecutionStatus.FAILED:
        return "task.failed.v1", {"error": "", "step": None}
    if run.status is WorkflowExecutionStatus.CANCELED:
        return "task.cancelled.v1", {"reason": cap_optional_text(reason) or "cancelled in Temporal"}
    return "task.terminated.v1", {
        "reason": cap_optional_text(reason),
        "close_status": close_status,
        "run_id": run.run_id,
        "identity": cap_optional_text(identity),
    }
