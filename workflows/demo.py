"""The built-in task types' runners: `demo.pipeline` (sequential) and
`demo.fanout` (parallel with a concurrency limit, then a fan-in).

Deterministic workflow code; registered in `workflows.registry`.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow

from schemas.tasks import (
    DEMO_STEP_MAX_ATTEMPTS,
    DemoFanoutInput,
    DemoPipelineInput,
    DemoStepInput,
    DemoStepResult,
)
from schemas.workflow import DEMO_STEP
from workflows.context import StepContext
from workflows.registry import register_runner

STEP_MAX_ATTEMPTS = DEMO_STEP_MAX_ATTEMPTS


def _step_timeout(step_seconds: float, explicit: float | None) -> timedelta:
    return timedelta(seconds=explicit or step_seconds * 2 + 30)


async def run_pipeline(ctx: StepContext, raw: dict[str, Any]) -> dict[str, Any]:
    params = DemoPipelineInput.model_validate(raw)
    ctx.set_total_steps(params.steps)
    if params.start_delay_seconds > 0:
        await ctx.delay(params.start_delay_seconds)
    outputs: list[dict[str, Any]] = []
    for index in range(1, params.steps + 1):
        step = DemoStepInput(
            task_id=ctx.task_id,
            index=index,
            total_steps=params.steps,
            name=f"step-{index}",
            step_seconds=params.step_seconds,
            progress_ticks=params.progress_ticks,
            fail=params.fail_at_step == index,
            max_attempts=STEP_MAX_ATTEMPTS,
            hang_attempts=params.hang_attempts if params.hang_at_step == index else 0,
            flaky_attempts=params.flaky_attempts if params.flaky_at_step == index else 0,
        )
        done = await ctx.run_step(
            DEMO_STEP,
            step,
            index=index,
            name=step.name,
            result_type=DemoStepResult,
            attempt_timeout=_step_timeout(params.step_seconds, params.step_timeout_seconds),
        )
        outputs.append(done.output)
    return {"steps": params.steps, "outputs": outputs}


async def run_fanout(ctx: StepContext, raw: dict[str, Any]) -> dict[str, Any]:
    """N branch steps, at most `max_parallel` at once; the first failure cancels the rest."""
    params = DemoFanoutInput.model_validate(raw)
    ctx.set_total_steps(params.branches)
    slots = asyncio.Semaphore(params.max_parallel)

    async def branch(index: int) -> DemoStepResult:
        async with slots:
            step = DemoStepInput(
                task_id=ctx.task_id,
                index=index,
                total_steps=params.branches,
                name=f"branch-{index}",
                step_seconds=params.step_seconds,
                progress_ticks=params.progress_ticks,
                fail=params.fail_at_branch == index,
                max_attempts=STEP_MAX_ATTEMPTS,
            )
            return await ctx.run_step(
                DEMO_STEP,
                step,
                index=index,
                name=step.name,
                result_type=DemoStepResult,
                attempt_timeout=_step_timeout(params.step_seconds, None),
            )

    tasks = [asyncio.create_task(branch(i)) for i in range(1, params.branches + 1)]
    try:
        # workflow.wait, not asyncio.wait: deterministic ordering of what finished.
        await workflow.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        failed = next((t for t in tasks if t.done() and t.exception() is not None), None)
        if failed is not None:
            raise failed.exception()  # type: ignore[misc]
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        # Wait for cancelled branches, so no step event can follow the terminal one.
        await asyncio.gather(*tasks, return_exceptions=True)
    outputs = [task.result().output for task in tasks]
    return {"branches": params.branches, "outputs": outputs}


register_runner("demo.pipeline", run_pipeline)
register_runner("demo.fanout", run_fanout)
