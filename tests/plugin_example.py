"""A task type from "another package", registered through the plugin extension point.

`test.echo` upper-cases each word in its own step. Used by
tests/integration/test_task_type_plugin.py, and shown in docs/task-types.md.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field
from temporalio import activity

from activities.recorder import EventRecorder
from activities.steps import StepEvents
from schemas.plugins import TaskTypePlugin
from workflows.context import StepContext


class EchoInput(BaseModel):
    words: list[str] = Field(min_length=1, max_length=50)


class EchoStep(BaseModel):
    task_id: str
    index: int
    total: int
    word: str


class EchoResult(BaseModel):
    output: dict[str, Any]


async def run_echo(ctx: StepContext, raw: dict[str, Any]) -> dict[str, Any]:
    params = EchoInput.model_validate(raw)
    ctx.set_total_steps(len(params.words))
    shouted = []
    for index, word in enumerate(params.words, start=1):
        step = EchoStep(task_id=ctx.task_id, index=index, total=len(params.words), word=word)
        done = await ctx.run_step(
            "echo_step",
            step,
            index=index,
            name=f"echo-{index}",
            result_type=EchoResult,
            attempt_timeout=timedelta(seconds=30),
        )
        shouted.append(done.output["word"])
    return {"words": shouted}


def echo_activities(recorder: EventRecorder) -> list[Any]:
    @activity.defn(name="echo_step")
    async def echo_step(step: EchoStep) -> EchoResult:
        events = StepEvents(
            recorder,
            task_id=step.task_id,
            index=step.index,
            name=f"echo-{step.index}",
            total_steps=step.total,
        )
        began = time.monotonic()
        await events.started()
        output = {"word": step.word.upper()}
        await events.completed(output, time.monotonic() - began)
        return EchoResult(output=output)

    return [echo_step]


PLUGIN = TaskTypePlugin(
    name="test.echo",
    input_model=EchoInput,
    runner=run_echo,
    activities=echo_activities,
    sandbox_modules=("tests.plugin_example",),
)
