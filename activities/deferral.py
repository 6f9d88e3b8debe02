"""`record_deferral`: `DeferralNoticeWorkflow`'s one activity records `task.deferred.v1`.

Recorded under the task's id with no run (the task's own run has not begun: Temporal
holds it until its booked start), with an id derived from the task's, so however often
it is retried the task has one such event. A task that already ended, or was pruned,
gets none (nothing to tell any more).
"""

from __future__ import annotations

import logging

from temporalio import activity

from activities.recorder import EventRecorder
from schemas.deferral import RECORD_DEFERRAL, DeferralNotice, deferral_event_id
from store.events import ChapterClosedError, TaskPrunedError

log = logging.getLogger(__name__)


class DeferralActivities:
    def __init__(self, recorder: EventRecorder) -> None:
        self._recorder = recorder

    @activity.defn(name=RECORD_DEFERRAL)
    async def record(self, notice: DeferralNotice) -> bool:
        """Whether the event is recorded (now or by an earlier attempt)."""
        try:
            await self._recorder.record(
                event_id=deferral_event_id(notice.task_id),
                task_id=notice.task_id,
                event_type="task.deferred.v1",
                data={
                    "until": notice.until.isoformat(),
                    "reason": "rate_limit",
                    "rule": notice.rule,
                    "task_type": notice.task_type,
                },
            )
        except (ChapterClosedError, TaskPrunedError) as exc:
            log.info(
                "deferral not recorded: the task ended already",
                extra={"task_id": notice.task_id, "error": str(exc)},
            )
            return False
        return True
