"""`demo.chat`: a stand-in for an LLM call that streams its answer token by token into
the `answer` output stream, with live metadata `{tokens, model}` (docs/task-types.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

CHAT_MODEL = "taskplane-demo-1"
CHAT_STEP = "demo_chat_answer"
ANSWER_STREAM = "answer"


class DemoChatInput(BaseModel):
    """`demo.chat`: answer `prompt` in `tokens` tokens, one every `token_seconds`."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(default="Why stream task output?", min_length=1, max_length=2000)
    tokens: int = Field(default=60, ge=1, le=20_000)
    token_seconds: float = Field(default=0.05, ge=0, le=10)
    # Rehearsal: the first `flaky_attempts` attempts fail after `fail_after_tokens` tokens.
    fail_after_tokens: int | None = Field(default=None, ge=0)
    flaky_attempts: int = Field(default=1, ge=1)

    def planned_events(self) -> int:
        """At most (no coalescing at all): created, the terminal event, and per attempt
        started, the first metadata, an output, a metadata and a progress event per
        token, and its end. `POST /tasks` checks it against the event budget."""
        retries = min(self.flaky_attempts, 2) if self.fail_after_tokens is not None else 0
        return 2 + (1 + retries) * (3 + 3 * self.tokens)


class DemoChatStep(BaseModel):
    task_id: str
    prompt: str
    tokens: int = Field(ge=1)
    token_seconds: float = Field(ge=0)
    fail_after_tokens: int | None = None
    flaky_attempts: int = 1
    max_attempts: int = Field(default=3, ge=1)


class DemoChatResult(BaseModel):
    answer: str
    tokens: int
    model: str = CHAT_MODEL
