"""Inputs of the bench's own workflows (pure pydantic: safe to pass through the sandbox)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class BenchPipelineInput(BaseModel):
    """A pipeline of `steps` steps, shaped like `demo.pipeline`."""

    task_id: str
    steps: int = Field(default=5, ge=1)
    step_seconds: float = Field(default=0, ge=0)
    progress_ticks: int = Field(default=0, ge=0)
    # BenchEmitEveryEvent only: how the workflow records each event.
    via: Literal["local_activity", "activity"] = "local_activity"
    # BenchBare only, to take production's cost apart: its two task-level events
    # through the `record_event` local activity, and its search-attribute upserts:
    # "lean" as production now (the patch's TemporalChangeVersion, then TaskStatus and
    # TaskStep once at the end), "per_step" as before issue 15 (TaskStatus at start and
    # end, TaskStep at every step).
    task_events: bool = False
    upserts: Literal["none", "lean", "per_step"] = "none"


class BenchPipelineResult(BaseModel):
    steps: int


class BenchChatInput(BaseModel):
    """`demo.chat`'s output on a Workflow Stream: the same tokens on the same schedule."""

    task_id: str
    prompt: str
    tokens: int = Field(ge=1)
    token_seconds: float = Field(ge=0)
    # The publisher's batch interval (the library's coalescing); 0: force_flush every token.
    batch_ms: int = Field(default=50, ge=0)
