"""`BulkOperationWorkflow`: one bulk operation (`POST /tasks/bulk`). Deterministic code.

Three activities do the work (activities/bulk.py): select the matching tasks into the
store, act on pages of them, mark the operation completed. The workflow only loops over
pages and continues as new every `pages_per_run` pages, so a million-task operation
keeps a short history. Progress lives in the store (each task's outcome), not in the
workflow's state, so a worker SIGKILL costs at most a retried page, which acts only on
tasks that have no outcome yet.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from schemas.bulk import (
        BULK_ACT,
        BULK_FINISH,
        BULK_SELECT,
        BULK_WORKFLOW,
        BulkCounts,
        BulkPageResult,
        BulkStepInput,
        BulkWorkflowInput,
    )

# The store or Temporal may be away for a while: never give up, back off to 30 s.
BULK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
)
# One activity: a selection of a million tasks, or a page at a low rate cap.
BULK_ACTIVITY_TIMEOUT = timedelta(hours=1)


@workflow.defn(name=BULK_WORKFLOW)
class BulkOperationWorkflow:
    @workflow.run
    async def run(self, state: BulkWorkflowInput) -> BulkCounts:
        step = BulkStepInput(bulk_id=state.bulk_id)
        heartbeat = timedelta(seconds=state.heartbeat_seconds)
        if not state.selected:
            await workflow.execute_activity(
                BULK_SELECT,
                step,
                start_to_close_timeout=BULK_ACTIVITY_TIMEOUT,
                heartbeat_timeout=heartbeat,
                retry_policy=BULK_RETRY,
            )
            state.selected = True
        while True:
            page = await workflow.execute_activity(
                BULK_ACT,
                step,
                result_type=BulkPageResult,
                start_to_close_timeout=BULK_ACTIVITY_TIMEOUT,
                heartbeat_timeout=heartbeat,
                retry_policy=BULK_RETRY,
            )
            if page.remaining == 0:
                break
            state.pages += 1
            if (
                state.pages % state.pages_per_run == 0
                or workflow.info().is_continue_as_new_suggested()
            ):
                workflow.continue_as_new(state)
        counts: BulkCounts = await workflow.execute_activity(
            BULK_FINISH,
            step,
            result_type=BulkCounts,
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=BULK_RETRY,
        )
        return counts
