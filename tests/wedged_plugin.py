"""A task type with a bug that fails its workflow task, again and again (a bad deploy).

Its runner raises a plain `TypeError` after the task's first event: not a Temporal
failure, so the SDK fails the workflow task and Temporal retries it forever. Used
by tests/integration/test_reconciler.py.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from activities.recorder import EventRecorder
from schemas.plugins import TaskTypePlugin
from workflows.context import StepContext


class WedgedInput(BaseModel):
    pass


async def run_wedged(ctx: StepContext, raw: dict[str, Any]) -> dict[str, Any]:
    raise TypeError("a bug in this task type: every workflow task fails here")


def no_activities(recorder: EventRecorder) -> list[Any]:
    return []


PLUGIN = TaskTypePlugin(
    name="test.wedged",
    input_model=WedgedInput,
    runner=run_wedged,
    activities=no_activities,
    sandbox_modules=("tests.wedged_plugin",),
)
