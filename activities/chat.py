"""`demo.chat`'s step: a stand-in for an LLM that streams its answer token by token.

Written with the authoring API (activities/authoring.py) as a plugin's step would be:
each token goes to the `answer` output stream, the metadata says `{tokens, model}`, and
progress follows the tokens. The answer is made up from the prompt (the same prompt
gives the same answer), so a test can compare the streamed text with the result.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time

from temporalio import activity

from activities.authoring import StepWriter, emit_output, progress, set_metadata
from activities.recorder import EventRecorder
from schemas.chat import ANSWER_STREAM, CHAT_MODEL, CHAT_STEP, DemoChatResult, DemoChatStep
from telemetry.logs import bind_log_context

_WORDS = (
    *("events", "durable", "streams", "workers", "retries", "replay", "outbox", "history"),
    *("tokens", "resume", "order", "exactly", "once", "snapshot", "metadata", "progress"),
    *("output", "watchers", "survive", "restarts", "the", "a", "of", "and", "to", "every"),
    *("with", "without", "gaps", "store", "broker", "temporal"),
)


def answer_tokens(prompt: str, count: int) -> list[str]:
    """`count` tokens (words with their leading space), the same for the same prompt."""
    seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big")
    pick = random.Random(seed).choice  # noqa: S311 - made-up text, not a secret
    return [(" " if n else "") + pick(_WORDS) for n in range(count)]


class ChatActivities:
    def __init__(self, recorder: EventRecorder) -> None:
        self._recorder = recorder

    @activity.defn(name=CHAT_STEP)
    async def answer(self, step: DemoChatStep) -> DemoChatResult:
        info = activity.info()
        bind_log_context(task_id=step.task_id, workflow_id=info.workflow_id, step=1)
        writer = StepWriter(self._recorder, task_id=step.task_id, index=1, name="answer")
        async with writer:
            if info.attempt > 1:
                # The previous attempt may have died without a word (worker killed): its
                # failure, and so the end of its output, is recorded now (same id: once).
                previous = info.attempt - 1
                await writer.failed(
                    f"attempt {previous} did not finish", will_retry=True, attempt=previous
                )
            # The token schedule starts here, just before `task.step.started.v1` is stamped
            # (the bench reads each token's write time off that stamp).
            began = time.monotonic()
            await writer.started()
            tokens = answer_tokens(step.prompt, step.tokens)
            await set_metadata({"model": CHAT_MODEL, "tokens": 0})
            try:
                for count, token in enumerate(tokens, start=1):
                    # Deadlines from the start, not from the last token: a steady rate
                    # (the bench reads each token's emit time off this schedule).
                    if (wait := began + count * step.token_seconds - time.monotonic()) > 0:
                        await asyncio.sleep(wait)
                    activity.heartbeat()
                    await emit_output(token, stream=ANSWER_STREAM)
                    await set_metadata({"tokens": count})
                    await progress(count / len(tokens), f"{count} tokens")
                    if count == step.fail_after_tokens and info.attempt <= step.flaky_attempts:
                        raise RuntimeError(f"the model stopped after {count} tokens (rehearsal)")
            except Exception as exc:
                await writer.failed(str(exc), will_retry=info.attempt < step.max_attempts)
                raise
            answer = "".join(tokens)
            output = {"tokens": len(tokens), "model": CHAT_MODEL}
            await writer.completed(output, round(time.monotonic() - began, 6))
        return DemoChatResult(answer=answer, tokens=len(tokens))
