"""The step of the demo task types: sleep, tick progress, maybe fail or hang.

The step records its own started/progress/completed/failed events through
`StepEvents`, so progress costs no Temporal round trip and no history event.
"""

from __future__ import annotations

import asyncio
import time

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.recorder import EventRecorder
from activities.steps import StepEvents
from schemas.tasks import DemoStepInput, DemoStepResult
from schemas.workflow import DEMO_STEP, STEP_FAILED
from telemetry.logs import bind_log_context

# A heartbeat at least this often, so cancellation arrives promptly.
HEARTBEAT_EVERY_SECONDS = 1.0


class DemoActivities:
    def __init__(self, recorder: EventRecorder) -> None:
        self._recorder = recorder

    @activity.defn(name=DEMO_STEP)
    async def run_step(self, step: DemoStepInput) -> DemoStepResult:
        info = activity.info()
        bind_log_context(task_id=step.task_id, workflow_id=info.workflow_id, step=step.index)
        events = StepEvents(
            self._recorder,
            task_id=step.task_id,
            index=step.index,
            name=step.name,
            total_steps=step.total_steps,
        )
        if info.attempt > 1:
            # If the previous attempt died silently (timed out, worker killed), say so
            # now; if it recorded its own failure, this is the same id and dedupes.
            previous = info.attempt - 1
            await events.failed(
                f"attempt {previous} did not finish (timed out or worker stopped)",
                will_retry=True,
                attempt=previous,
            )
        await events.started()
        started = time.monotonic()
        try:
            if info.attempt <= step.hang_attempts:
                await _hang()
            await _work(events, step, started)
            if info.attempt <= step.flaky_attempts:
                raise RuntimeError(f"step {step.index} is flaky on attempt {info.attempt}")
            if step.fail:
                raise ApplicationError(
                    f"step {step.index} failed as asked (fail_at_step={step.index})",
                    type=STEP_FAILED,
                    non_retryable=True,
                )
            # Inside the try: a completion the store refuses (the event budget) fails the step.
            output = {"slept_seconds": step.step_seconds, "ticks": step.progress_ticks}
            await events.completed(output, round(time.monotonic() - started, 6))
        except asyncio.CancelledError:
            details = activity.cancellation_details()
            # `not_found`: the server already timed this attempt out and forgot it.
            if details is not None and (details.timed_out or details.not_found):
                await events.failed(
                    f"attempt {info.attempt} timed out",
                    will_retry=info.attempt < step.max_attempts,
                )
            raise
        except Exception as exc:
            retryable = not (isinstance(exc, ApplicationError) and exc.non_retryable)
            await events.failed(
                str(exc) or type(exc).__name__,
                will_retry=retryable and info.attempt < step.max_attempts,
            )
            raise
        return DemoStepResult(index=step.index, output=output)


async def _work(events: StepEvents, step: DemoStepInput, started: float) -> None:
    """Sleep `step_seconds`, with `progress_ticks` evenly spaced on a fixed schedule."""
    ticks = step.progress_ticks
    if ticks == 0:
        await _sleep_heartbeating(started + step.step_seconds)
        return
    interval = step.step_seconds / ticks
    for tick in range(1, ticks + 1):
        # Deadlines from the start, not from the last tick, so the rate does not drift.
        await _sleep_heartbeating(started + tick * interval)
        await events.progress(round(tick * 100 / ticks, 3), f"tick {tick}/{ticks}")


async def _hang() -> None:
    """Never finish on our own; only a timeout or a cancel ends this attempt."""
    while True:
        await _sleep_heartbeating(time.monotonic() + HEARTBEAT_EVERY_SECONDS)


async def _sleep_heartbeating(deadline: float) -> None:
    while (remaining := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(remaining, HEARTBEAT_EVERY_SECONDS))
        activity.heartbeat()
    activity.heartbeat()
