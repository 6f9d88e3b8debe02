"""`demo.approval`: a step, then a wait for the input `approve`, then a step more or
a failure, as the person said. The built-in example of `wait_for_input`.

Deterministic workflow code; registered in `workflows.registry` when imported (the
worker does: worker/temporal_worker.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.exceptions import ApplicationError

from schemas.tasks import ApprovalInput, DemoApprovalInput, DemoStepInput, DemoStepResult
from schemas.workflow import DEMO_STEP
from workflows.context import StepContext
from workflows.demo import STEP_MAX_ATTEMPTS
from workflows.registry import register_runner
from workflows.waiting import wait_for_input

APPROVAL_INPUT = "approve"


async def _step(ctx: StepContext, params: DemoApprovalInput, index: int, name: str) -> None:
    step = DemoStepInput(
        task_id=ctx.task_id,
        index=index,
        total_steps=2,
        name=name,
        step_seconds=params.step_seconds,
        progress_ticks=0,
        max_attempts=STEP_MAX_ATTEMPTS,
    )
    await ctx.run_step(
        DEMO_STEP,
        step,
        index=index,
        name=name,
        result_type=DemoStepResult,
        attempt_timeout=timedelta(seconds=params.step_seconds * 2 + 30),
    )


async def run_approval(ctx: StepContext, raw: dict[str, Any]) -> dict[str, Any]:
    params = DemoApprovalInput.model_validate(raw)
    ctx.set_total_steps(2)
    await _step(ctx, params, 1, "prepare")
    decision = await wait_for_input(
        APPROVAL_INPUT,
        ApprovalInput,
        timeout=timedelta(seconds=params.timeout_seconds),
        prompt="Approve this task?",
    )
    if not decision.approved:
        why = f": {decision.comment}" if decision.comment else ""
        # No `type`: the task's error reads as said, not prefixed with one.
        raise ApplicationError(f"not approved{why}", non_retryable=True)
    await _step(ctx, params, 2, "apply")
    return {"approved": True, "comment": decision.comment}


register_runner("demo.approval", run_approval)
