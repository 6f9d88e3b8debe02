"""The step of `demo.pipeline`: sleep, tick progress, maybe fail for good.

The step records its own started/progress/completed/failed events through the
recorder, so progress costs no Temporal round trip and no history event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.identity import ActivityEventIds
from activities.names import DEMO_STEP, INVALID_EVENT, STEP_FAILED
from activities.recorder import EventRecorder
from schemas import InvalidEventError
from schemas.tasks import DemoStepInput, DemoStepResult
from telemetry.logs import bind_log_context

log = logging.getLogger(__name__)

# A heartbeat at least this often, so cancellation arrives promptly.
HEARTBEAT_EVERY_SECONDS = 1.0


class DemoActivities:
    def __init__(self, recorder: EventRecorder) -> None:
        self._recorder = recorder

    async def _record(
        self, ids: ActivityEventIds, kind: str, step: DemoStepInput, **data: Any
    ) -> None:
        try:
            await self._recorder.record(
                event_id=ids.next(kind),
                task_id=step.task_id,
                event_type=f"task.step.{kind}.v1",
                data={"index": step.index, "name": step.name, **data},
            )
        except InvalidEventError as exc:
            # The same data would be refused on every attempt: fail the step for good.
            raise ApplicationError(str(exc), type=INVALID_EVENT, non_retryable=True) from exc

    async def _record_failed(
        self,
        ids: ActivityEventIds,
        step: DemoStepInput,
        *,
        attempt: int,
        error: str,
        will_retry: bool,
    ) -> None:
        await self._recorder.record(
            event_id=ids.failed(attempt),
            task_id=step.task_id,
            event_type="task.step.failed.v1",
            data={
                "index": step.index,
                "name": step.name,
                "error": error,
                "attempt": attempt,
                "will_retry": will_retry,
            },
        )

    @activity.defn(name=DEMO_STEP)
    async def run_step(self, step: DemoStepInput) -> DemoStepResult:
        info = activity.info()
        bind_log_context(task_id=step.task_id, workflow_id=info.workflow_id, step=step.index)
        ids = ActivityEventIds(info)
        total = {"total_steps": step.total_steps}
        if info.attempt > 1:
            # If the previous attempt died silently (timed out, worker killed), say so
            # now; if it recorded its own failure, this is the same id and dedupes.
            await self._record_failed(
                ids,
                step,
                attempt=info.attempt - 1,
                error=f"attempt {info.attempt - 1} did not finish (timed out or worker stopped)",
                will_retry=True,
            )
        await self._record(ids, "started", step, attempt=info.attempt, **total)
        started = time.monotonic()
        try:
            if info.attempt <= step.hang_attempts:
                await _hang()
            await self._work(ids, step, started)
            if step.fail:
                raise ApplicationError(
                    f"step {step.index} failed as asked (fail_at_step={step.index})",
                    type=STEP_FAILED,
                    non_retryable=True,
                )
        except asyncio.CancelledError:
            details = activity.cancellation_details()
            if details is not None and details.timed_out:
                await self._record_failed(
                    ids,
                    step,
                    attempt=info.attempt,
                    error=f"attempt {info.attempt} timed out",
                    will_retry=info.attempt < step.max_attempts,
                )
            raise
        except Exception as exc:
            retryable = not (isinstance(exc, ApplicationError) and exc.non_retryable)
            await self._record_failed(
                ids,
                step,
                attempt=info.attempt,
                error=str(exc) or type(exc).__name__,
                will_retry=retryable and info.attempt < step.max_attempts,
            )
            raise
        duration = time.monotonic() - started
        output = {"slept_seconds": step.step_seconds, "ticks": step.progress_ticks}
        await self._record(
            ids, "completed", step, output=output, duration_seconds=round(duration, 6), **total
        )
        return DemoStepResult(index=step.index, output=output)

    async def _work(self, ids: ActivityEventIds, step: DemoStepInput, started: float) -> None:
        """Sleep `step_seconds`, with `progress_ticks` evenly spaced on a fixed schedule."""
        ticks = step.progress_ticks
        if ticks == 0:
            await _sleep_heartbeating(started + step.step_seconds)
            return
        interval = step.step_seconds / ticks
        for tick in range(1, ticks + 1):
            # Deadlines from the start, not from the last tick, so the rate does not drift.
            await _sleep_heartbeating(started + tick * interval)
            await self._record(
                ids,
                "progress",
                step,
                percent=round(tick * 100 / ticks, 3),
                message=f"tick {tick}/{ticks}",
                total_steps=step.total_steps,
            )


async def _hang() -> None:
    """Never finish on our own; only a timeout or a cancel ends this attempt."""
    while True:
        await _sleep_heartbeating(time.monotonic() + HEARTBEAT_EVERY_SECONDS)


async def _sleep_heartbeating(deadline: float) -> None:
    while (remaining := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(remaining, HEARTBEAT_EVERY_SECONDS))
        activity.heartbeat()
    activity.heartbeat()
