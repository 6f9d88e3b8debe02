"""`DeferralNoticeWorkflow`: makes a rate-limit deferral an event of its task.

The API starts the task's own workflow with Temporal's `start_delay` and, beside it,
this one (`deferred-<task id>`, schemas/deferral.py): it records `task.deferred.v1`
(an activity, retried until the store takes it) and ends. The task's workflow is not
involved: it starts at its booked time whatever becomes of this one. Deterministic.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.deferral import DEFERRAL_NOTICE_WORKFLOW, RECORD_DEFERRAL, DeferralNotice
    from workflows.policies import RECORD_RETRY

RECORD_TIMEOUT = timedelta(seconds=10)


@workflow.defn(name=DEFERRAL_NOTICE_WORKFLOW)
class DeferralNoticeWorkflow:
    @workflow.run
    async def run(self, notice: DeferralNotice) -> bool:
        """Whether the event was recorded (False: the task had already ended)."""
        recorded: bool = await workflow.execute_activity(
            RECORD_DEFERRAL,
            notice,
            result_type=bool,
            start_to_close_timeout=RECORD_TIMEOUT,
            retry_policy=RECORD_RETRY,
        )
        return recorded
