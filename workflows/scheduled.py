"""`ScheduledTaskWorkflow`: what a Temporal Schedule starts on each fire. Deterministic.

Temporal names the run (the schedule action's id plus the fire time, to the second), so
the task's id is derived from that name and the run's first run id
(`scheduled_task_id`, a UUID). The run claims the task
for the schedule's tenant (a local activity: the claim the API makes before
`POST /tasks` starts a workflow), then starts the ordinary `TaskWorkflow` under
`task-<id>` as its child and waits for it. Waiting is what gives the schedule's
overlap policy its meaning: a run is "still running" while its task is; cancelling
or terminating this run (policies `cancel_other`, `terminate_other`) cancels the task.
The task carries the schedule's concurrency key, limit and priority, and Temporal
Priority with the tenant as fairness key (`workflow.patched("scheduled-flow")`: runs
recorded before replay without them). `TaskWorkflow` itself is unchanged.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ChildWorkflowError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from schemas.schedules import (
        CLAIM_SCHEDULED_TASK,
        MEMO_SCHEDULE_ID,
        SCHEDULED_TASK_WORKFLOW,
        ClaimScheduledTask,
        ScheduledTaskInput,
        scheduled_task_id,
    )
    from schemas.workflow import (
        MEMO_TASK_TYPE,
        TASK_WORKFLOW,
        TaskWorkflowInput,
        TaskWorkflowResult,
        start_search_attributes,
        workflow_id_for,
    )
    from workflows.policies import PATCH_SCHEDULED_FLOW

CLAIM_TIMEOUT = timedelta(seconds=10)
CLAIM_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=0,  # the store may be down for a while: the run waits for it
)


@workflow.defn(name=SCHEDULED_TASK_WORKFLOW)
class ScheduledTaskWorkflow:
    @workflow.run
    async def run(self, request: ScheduledTaskInput) -> str:
        """Start the fire's task and wait for it to end; returns the task's id."""
        info = workflow.info()
        task_id = scheduled_task_id(info.workflow_id, info.first_execution_run_id)
        claimed: bool = await workflow.execute_local_activity(
            CLAIM_SCHEDULED_TASK,
            ClaimScheduledTask(
                task_id=task_id, tenant=request.tenant, concurrency_key=request.concurrency_key
            ),
            result_type=bool,
            start_to_close_timeout=CLAIM_TIMEOUT,
            retry_policy=CLAIM_RETRY,
        )
        if not claimed:  # the id is a pruned task's (a replayed old fire): start nothing
            workflow.logger.warning("scheduled task not claimed", extra={"task_id": task_id})
            return task_id
        child = TaskWorkflowInput(
            task_id=task_id, task_type=request.task_type, input=request.input, owner=request.tenant
        )
        priority = Priority.default
        if workflow.patched(PATCH_SCHEDULED_FLOW):
            child = _with_flow(child, request)
            priority = Priority(
                priority_key=request.priority,
                fairness_key=request.tenant,
                fairness_weight=request.fairness_weight,
            )
        handle = await workflow.start_child_workflow(
            TASK_WORKFLOW,
            child,
            id=workflow_id_for(task_id),
            result_type=TaskWorkflowResult,
            memo={MEMO_TASK_TYPE: request.task_type, MEMO_SCHEDULE_ID: request.schedule_id},
            search_attributes=start_search_attributes(request.task_type),
            static_summary=f"{request.task_type} task {task_id} (schedule {request.schedule_id})",
            parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,  # a task id is never reused
            priority=priority,
        )
        # The task failed or was cancelled: its own events say so; this run just ends.
        with contextlib.suppress(ChildWorkflowError):
            await handle
        return task_id


def _with_flow(child: TaskWorkflowInput, request: ScheduledTaskInput) -> TaskWorkflowInput:
    """The task's input with the schedule's flow control: admission applies to it as to
    a task `POST /tasks` creates (the key is set only when the type has a limit)."""
    return child.model_copy(
        update={
            "concurrency_key": request.concurrency_key if request.concurrency_limit else None,
            "concurrency_limit": request.concurrency_limit,
            "concurrency_strategy": request.concurrency_strategy,
            "priority": request.priority,
        }
    )
