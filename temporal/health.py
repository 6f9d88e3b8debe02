"""Whether a workflow can move: a workflow task that keeps failing leaves the run open
and deaf (a bad deploy, a bug in a task type). Read from `describe`, one cheap call."""

from __future__ import annotations

from temporalio.client import WorkflowExecutionDescription

# A pending workflow task on its Nth attempt: the earlier ones failed (or timed out).
FAILING_ATTEMPTS = 2


def workflow_task_failing(description: WorkflowExecutionDescription) -> str | None:
    """Why the run cannot act on a signal now, or None when its workflow tasks complete."""
    pending = description.raw_description.pending_workflow_task
    if pending.attempt < FAILING_ATTEMPTS:
        return None
    since = pending.original_scheduled_time.ToDatetime().isoformat()
    return f"its workflow task keeps failing (attempt {pending.attempt}, since {since} UTC)"
