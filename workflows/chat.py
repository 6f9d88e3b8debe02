"""`demo.chat`'s runner: one step that streams an answer (activities/chat.py).

Deterministic workflow code; registered in `workflows.registry`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from schemas.chat import CHAT_STEP, DemoChatInput, DemoChatResult, DemoChatStep
from workflows.context import StepContext
from workflows.demo import STEP_MAX_ATTEMPTS
from workflows.registry import register_runner


async def run_chat(ctx: StepContext, raw: dict[str, Any]) -> dict[str, Any]:
    params = DemoChatInput.model_validate(raw)
    ctx.set_total_steps(1)
    step = DemoChatStep(
        task_id=ctx.task_id,
        prompt=params.prompt,
        tokens=params.tokens,
        token_seconds=params.token_seconds,
        fail_after_tokens=params.fail_after_tokens,
        flaky_attempts=params.flaky_attempts,
        max_attempts=STEP_MAX_ATTEMPTS,
    )
    done = await ctx.run_step(
        CHAT_STEP,
        step,
        index=1,
        name="answer",
        result_type=DemoChatResult,
        attempt_timeout=timedelta(seconds=params.tokens * params.token_seconds * 2 + 30),
    )
    return done.model_dump(mode="json")


register_runner("demo.chat", run_chat)
