"""The bench's step activities: a no-op step, and steps that publish to a Workflow Stream.

Both take and return the production step's models; the streamed step keeps
the production step's schedule (progress ticks on fixed deadlines from the
step's start, a heartbeat at least every second) so both systems carry the
same events at the same rate.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.contrib.workflow_streams import WorkflowStreamClient

from activities.chat import answer_tokens
from activities.identity import ActivityEventIds
from bench.models import BenchChatInput
from bench.recorders import build_envelope
from bench.workflows import (
    ANSWER_TOPIC,
    NOOP_STEP,
    STREAM_TOPIC,
    STREAMED_CHAT_STEP,
    STREAMED_STEP,
)
from schemas.tasks import DemoStepInput, DemoStepResult

HEARTBEAT_EVERY_SECONDS = 1.0


def _output(step: DemoStepInput) -> dict[str, Any]:
    return {"slept_seconds": step.step_seconds, "ticks": step.progress_ticks}


@activity.defn(name=NOOP_STEP)
async def noop_step(step: DemoStepInput) -> DemoStepResult:
    """The production step with `step_seconds=0` and nothing recorded: one heartbeat."""
    activity.heartbeat()
    return DemoStepResult(index=step.index, output=_output(step))


async def _sleep_heartbeating(deadline: float) -> None:
    while (remaining := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(remaining, HEARTBEAT_EVERY_SECONDS))
        activity.heartbeat()
    activity.heartbeat()


@activity.defn(name=STREAMED_STEP)
async def streamed_step(step: DemoStepInput) -> DemoStepResult:
    """The demo step, its events carried by the workflow's stream instead of the store.

    Every event is published with `force_flush=True`, the library's
    lowest-latency setting: the flusher signals the workflow at once, and
    events published while a signal is in flight ride in the next one.
    """
    info = activity.info()
    ids = ActivityEventIds(info)
    stream = WorkflowStreamClient.from_within_activity()
    events = stream.topic(STREAM_TOPIC)
    common = {"index": step.index, "name": step.name, "total_steps": step.total_steps}

    def publish(kind: str, **data: Any) -> None:
        envelope = build_envelope(ids.next(kind), step.task_id, f"task.step.{kind}.v1", data)
        events.publish(envelope.model_dump(mode="json", exclude_none=True), force_flush=True)

    async with stream:
        publish("started", attempt=info.attempt, **common)
        started = time.monotonic()
        ticks = step.progress_ticks
        if ticks == 0:
            await _sleep_heartbeating(started + step.step_seconds)
        interval = step.step_seconds / ticks if ticks else 0.0
        for tick in range(1, ticks + 1):
            await _sleep_heartbeating(started + tick * interval)
            publish(
                "progress",
                percent=round(tick * 100 / ticks, 3),
                message=f"tick {tick}/{ticks}",
                **common,
            )
        duration = time.monotonic() - started
        publish("completed", output=_output(step), duration_seconds=round(duration, 6), **common)
        # Leaving the context cancels the background flusher; cancelled in the middle
        # of a signal, it swallows the cancellation (the RPC's CANCELLED status counts
        # as retryable) and the exit hangs ~16 s (temporalio 1.35). Nothing is in
        # flight after an explicit flush.
        await stream.flush()
    return DemoStepResult(index=step.index, output=_output(step))


@activity.defn(name=STREAMED_CHAT_STEP)
async def streamed_chat_step(request: BenchChatInput) -> None:
    """`demo.chat`'s step with its tokens on the workflow's stream instead of the store.

    The same tokens (`answer_tokens`) on the same schedule (token k due `k *
    token_seconds` after the start, which the first item tells as wall-clock `began`),
    batched by the library: one signal per `batch_ms` at most, or one at once per token
    (`force_flush`) when `batch_ms` is 0. Items: `{"began"}`, then `{"offset", "text"}`.
    """
    interval = timedelta(milliseconds=request.batch_ms or 2000)
    stream = WorkflowStreamClient.from_within_activity(batch_interval=interval)
    answer = stream.topic(ANSWER_TOPIC)
    force = request.batch_ms == 0
    async with stream:
        began, began_wall = time.monotonic(), time.time()
        answer.publish({"began": began_wall}, force_flush=True)
        offset = 0
        for count, token in enumerate(answer_tokens(request.prompt, request.tokens), start=1):
            if (wait := began + count * request.token_seconds - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            activity.heartbeat()
            answer.publish({"offset": offset, "text": token}, force_flush=force)
            offset += len(token)
        await stream.flush()  # see streamed_step: nothing in flight when the context exits
