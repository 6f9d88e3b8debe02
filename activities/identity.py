"""Deterministic event ids for events an activity records itself.

An id derives from the activity's identity (workflow id, run id, activity id,
attempt) plus the kind and a counter, so a replayed recording of the same
attempt dedupes while a new attempt records new events.
"""

from __future__ import annotations

from temporalio import activity

from schemas.ids import activity_event_id, attempt_prefix, step_failed_event_id


class ActivityEventIds:
    def __init__(self, info: activity.Info) -> None:
        self._info = info
        # Optional only for activities started outside a workflow, which we never do.
        self._workflow_id = info.workflow_id or ""
        self._run_id = info.workflow_run_id or ""
        self._prefix = attempt_prefix(
            self._workflow_id, self._run_id, info.activity_id, info.attempt
        )
        self._counter = 0

    def next(self, kind: str) -> str:
        self._counter += 1
        return activity_event_id(self._prefix, kind, self._counter)

    def failed(self, attempt: int | None = None) -> str:
        """The one id of `attempt`'s step.failed event (this attempt by default)."""
        return step_failed_event_id(
            self._workflow_id, self._run_id, self._info.activity_id, attempt or self._info.attempt
        )
