"""What Temporal knows about how a task's run ended or began, for the reconciler.

Read from the run's history, never from workflow code: a terminated or timed-out
run ran no Taskplane code at its end, and a reset run cannot tell from inside
that it is one. Each call is one history request (the close event alone, or the
head of a reset run's history), made only for runs that need it.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistoryEventFilterType

from schemas.workflow import workflow_id_for

# Temporal's names for close statuses, as the CLI and the Web UI spell them.
CLOSE_STATUS_NAMES: dict[WorkflowExecutionStatus, str] = {
    WorkflowExecutionStatus.COMPLETED: "COMPLETED",
    WorkflowExecutionStatus.FAILED: "FAILED",
    WorkflowExecutionStatus.CANCELED: "CANCELED",
    WorkflowExecutionStatus.TERMINATED: "TERMINATED",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "CONTINUED_AS_NEW",
    WorkflowExecutionStatus.TIMED_OUT: "TIMED_OUT",
}

# How far into a reset run's history its reset marker can be: the copied events up to
# the reset point, then the failed workflow task. Bounded, so a huge history is not read.
RESET_SCAN_EVENTS = 10_000


@dataclass(frozen=True, slots=True)
class RunClosure:
    """The close event of one run: who or what ended it, and why."""

    reason: str | None
    identity: str | None
    failure: str | None


async def run_closure(client: Client, task_id: str, run_id: str) -> RunClosure:
    handle = client.get_workflow_handle(workflow_id_for(task_id), run_id=run_id)
    async for event in handle.fetch_history_events(
        event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT
    ):
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
            attrs = event.workflow_execution_terminated_event_attributes
            return RunClosure(attrs.reason or None, attrs.identity or None, None)
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
            failure = event.workflow_execution_failed_event_attributes.failure
            return RunClosure(None, None, failure.message or None)
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
            return RunClosure("the workflow run's timeout expired", None, None)
    return RunClosure(None, None, None)


class ResetDetailsFromHistory:
    """`activities.recorder.ResetDetails` over a Temporal client: the reset marker of the
    new run (a workflow task failed with cause RESET_WORKFLOW) gives reason and point."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def __call__(self, task_id: str, run_id: str) -> tuple[str | None, str | None]:
        handle = self._client.get_workflow_handle(workflow_id_for(task_id), run_id=run_id)
        seen = 0
        async for event in handle.fetch_history_events():
            seen += 1
            if seen > RESET_SCAN_EVENTS:
                break
            if event.event_type != EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                continue
            attrs = event.workflow_task_failed_event_attributes
            if attrs.cause != WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW:
                continue
            point = f"event {attrs.started_event_id} of run {attrs.base_run_id}"
            return point, attrs.failure.message or None
        return None, None
