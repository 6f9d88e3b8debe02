"""`StepEvents`: how any step activity (built-in or a plugin's) reports itself.

Ids are deterministic per attempt (see `activities.identity`), so a retried
recording dedupes, and the failure of an attempt has one id whoever reports it.
"""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.identity import ActivityEventIds
from activities.recorder import EventRecorder
from schemas import InvalidEventError
from schemas.workflow import CHAPTER_CLOSED, INVALID_EVENT
from store.events import ChapterClosedError


class StepEvents:
    def __init__(
        self, recorder: EventRecorder, *, task_id: str, index: int, name: str, total_steps: int
    ) -> None:
        self._recorder = recorder
        self._info = activity.info()
        self._ids = ActivityEventIds(self._info)
        self._task_id = task_id
        self._step = {"index": index, "name": name}
        self._total = total_steps

    async def _record(self, kind: str, event_id: str, **data: Any) -> None:
        try:
            await self._recorder.record(
                event_id=event_id,
                task_id=self._task_id,
                event_type=f"task.step.{kind}.v1",
                data={**self._step, **data},
                run_id=self._info.workflow_run_id,
            )
        except InvalidEventError as exc:
            # The same data would be refused on every attempt: fail the step for good.
            raise ApplicationError(str(exc), type=INVALID_EVENT, non_retryable=True) from exc
        except ChapterClosedError as exc:
            # Its run was closed (terminated, timed out) or left behind by a reset.
            raise ApplicationError(str(exc), type=CHAPTER_CLOSED, non_retryable=True) from exc

    async def started(self) -> None:
        attempt = self._info.attempt
        await self._record(
            "started", self._ids.next("started"), attempt=attempt, total_steps=self._total
        )

    async def progress(self, percent: float, message: str | None = None) -> None:
        await self._record(
            "progress",
            self._ids.next("progress"),
            percent=percent,
            message=message,
            total_steps=self._total,
            attempt=self._info.attempt,
        )

    async def completed(self, output: dict[str, Any], duration_seconds: float) -> None:
        await self._record(
            "completed",
            self._ids.next("completed"),
            output=output,
            duration_seconds=duration_seconds,
            total_steps=self._total,
            attempt=self._info.attempt,
        )

    async def failed(self, error: str, *, will_retry: bool, attempt: int | None = None) -> None:
        attempt = attempt or self._info.attempt
        await self._record(
            "failed", self._ids.failed(attempt), error=error, attempt=attempt, will_retry=will_retry
        )
