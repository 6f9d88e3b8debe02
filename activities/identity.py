"""Deterministic event ids for events an activity records itself.

An id derives from the activity's identity (workflow id, run id, activity id,
attempt) plus the kind and a counter, so a replayed recording of the same
attempt dedupes while a new attempt records new events.
"""

from __future__ import annotations

import uuid

from temporalio import activity

EVENT_ID_NAMESPACE = uuid.UUID("6f1c1d2e-53a4-4c5e-9b8e-7a4f0d7c2b11")


class ActivityEventIds:
    def __init__(self, info: activity.Info) -> None:
        self._prefix = (
            f"{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}/{info.attempt}"
        )
        self._counter = 0

    def next(self, kind: str) -> str:
        self._counter += 1
        return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{self._prefix}/{kind}/{self._counter}"))
