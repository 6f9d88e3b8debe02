"""A complete task-type plugin that uses the authoring API from both sides: workflow
code (the runner) and step code (the activity). Shown in docs/task-types.md and run
by tests/integration/test_authoring.py.

`example.report` "reads" `pages` pages: the step streams a log line per page to the
`log` output and a JSON item per page to `pages`, keeps `pages_read` in the metadata
and reports progress; the runner marks the phases in the metadata and the log.
`overflow` rehearses the metadata cap from either side.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field
from temporalio import activity

from activities.authoring import StepWriter, emit_output, progress, set_metadata
from activities.recorder import EventRecorder
from schemas.plugins import TaskTypePlugin
from workflows import authoring
from workflows.context import StepContext


class ReportInput(BaseModel):
    pages: int = Field(default=5, ge=1, le=1000)
    overflow: Literal["step", "workflow"] | None = None


class ReadPages(BaseModel):
    task_id: str
    pages: int
    overflow: bool = False


class ReadResult(BaseModel):
    words: int


# --- workflow code: deterministic, writes through workflows.authoring --------------------


async def run_report(ctx: StepContext, raw: dict[str, Any]) -> dict[str, Any]:
    params = ReportInput.model_validate(raw)
    ctx.set_total_steps(1)
    await authoring.set_metadata({"phase": "reading"})
    await authoring.emit_output("report started\n", stream="log")
    read = await ctx.run_step(
        "example_report_read",
        ReadPages(task_id=ctx.task_id, pages=params.pages, overflow=params.overflow == "step"),
        index=1,
        name="read",
        result_type=ReadResult,
        attempt_timeout=timedelta(seconds=60),
    )
    if params.overflow == "workflow":
        for key in ("a", "b"):  # each patch fits; together they pass the cap
            await authoring.set_metadata({key: "x" * 9000})
    await authoring.set_metadata({"phase": None, "words": read.words})  # None: removed
    await authoring.progress(1.0, "report ready")
    return {"pages": params.pages, "words": read.words}


# --- step code: an activity, writes through activities.authoring -------------------------


def report_activities(recorder: EventRecorder) -> list[Any]:
    @activity.defn(name="example_report_read")
    async def read_pages(step: ReadPages) -> ReadResult:
        began = time.monotonic()
        async with StepWriter(recorder, task_id=step.task_id, index=1, name="read") as writer:
            await writer.started()
            words = 0
            for page in range(1, step.pages + 1):
                activity.heartbeat()
                words += 100 * page
                await emit_output(f"page {page}\n", stream="log")
                await emit_output({"page": page, "words": 100 * page}, stream="pages")
                await set_metadata({"pages_read": page})
                await progress(page / step.pages, f"page {page} of {step.pages}")
            if step.overflow:
                await set_metadata({"a": "x" * 9000})
                await set_metadata({"b": "x" * 9000})
            await writer.completed({"words": words}, time.monotonic() - began)
        return ReadResult(words=words)

    return [read_pages]


PLUGIN = TaskTypePlugin(
    name="example.report",
    input_model=ReportInput,
    runner=run_report,
    activities=report_activities,
    sandbox_modules=("tests.plugin_live",),
)
