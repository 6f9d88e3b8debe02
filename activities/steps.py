"""`StepEvents`: how any step activity (built-in or a plugin's) reports itself.

Ids are deterministic per attempt (see `activities.identity`), so a retried
recording dedupes, and the failure of an attempt has one id whoever reports it.

Progress faster than the worker's per-task rate (`TASKPLANE_PROGRESS_MAX_RATE`,
activities/coalesce.py) is coalesced: the latest value wins, and the value held
when the step ends is recorded before its `completed`/`failed` event, so a watcher
always sees a step's last progress. Only recorded events take an id, so the ids of
an attempt stay dense and deterministic in the order it records them.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.budget import budget_failure
from activities.coalesce import Coalescer
from activities.identity import ActivityEventIds
from activities.recorder import EventRecorder, NewEvent
from schemas import InvalidEventError
from schemas.workflow import CHAPTER_CLOSED, INVALID_EVENT
from store.budget import EventBudgetExceededError
from store.events import ChapterClosedError

log = logging.getLogger(__name__)

Progress = tuple[float, str | None]


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
        gates = recorder.progress_rates
        self._max_rate = gates.max_rate if gates is not None else 0.0
        self._coalescer: Coalescer[Progress] | None = (
            Coalescer(gates, task_id) if gates is not None and gates.enabled else None
        )

    def _event(self, kind: str, event_id: str, **data: Any) -> NewEvent:
        return NewEvent(event_id, f"task.step.{kind}.v1", {**self._step, **data})

    async def _record(self, event: NewEvent) -> None:
        try:
            await self._recorder.record(
                event_id=event.event_id,
                task_id=self._task_id,
                event_type=event.event_type,
                data=event.data,
                run_id=self._info.workflow_run_id,
            )
        except InvalidEventError as exc:
            # The same data would be refused on every attempt: fail the step for good.
            raise ApplicationError(str(exc), type=INVALID_EVENT, non_retryable=True) from exc
        except EventBudgetExceededError as exc:
            raise budget_failure(exc) from exc
        except ChapterClosedError as exc:
            # Its run was closed (terminated, timed out) or left behind by a reset.
            raise ApplicationError(str(exc), type=CHAPTER_CLOSED, non_retryable=True) from exc

    async def started(self) -> None:
        attempt = self._info.attempt
        await self._record(
            self._event(
                "started", self._ids.next("started"), attempt=attempt, total_steps=self._total
            )
        )

    async def progress(self, percent: float, message: str | None = None) -> None:
        event = self.progress_event(percent, message)
        if event is not None:
            await self._record(event)

    def progress_event(self, percent: float, message: str | None = None) -> NewEvent | None:
        """The progress event to record now, for a caller that records it with others
        (activities/authoring.py); None when the rate holds it (a later value replaces
        it, or the step's end records it)."""
        if self._coalescer is not None:
            now = self._coalescer.offer((percent, message))
            if now is None:
                return None
            percent, message = now
        return self._progress(percent, message)

    async def completed(self, output: dict[str, Any], duration_seconds: float) -> None:
        await self._flush_progress()
        await self._record(
            self._event(
                "completed",
                self._ids.next("completed"),
                output=output,
                duration_seconds=duration_seconds,
                total_steps=self._total,
                attempt=self._info.attempt,
            )
        )

    async def failed(self, error: str, *, will_retry: bool, attempt: int | None = None) -> None:
        attempt = attempt or self._info.attempt
        # A refused flush (budget, closed chapter) must not stop the failure being recorded.
        with contextlib.suppress(ApplicationError):
            await self._flush_progress()
        await self._record(
            self._event(
                "failed",
                self._ids.failed(attempt),
                error=error,
                attempt=attempt,
                will_retry=will_retry,
            )
        )

    def _progress(self, percent: float, message: str | None) -> NewEvent:
        return self._event(
            "progress",
            self._ids.next("progress"),
            percent=percent,
            message=message,
            total_steps=self._total,
            attempt=self._info.attempt,
        )

    async def _flush_progress(self) -> None:
        if self._coalescer is None:
            return
        held = self._coalescer.flush()
        if held is not None:
            await self._record(self._progress(*held))
        if self._coalescer.coalesced:
            log.info(
                "progress coalesced",
                extra={
                    "task_id": self._task_id,
                    "step": self._step["index"],
                    "attempt": self._info.attempt,
                    "coalesced": self._coalescer.coalesced,
                    "max_rate": self._max_rate,
                },
            )
            self._coalescer.coalesced = 0
