"""A task type whose runner fails with a 100 KB error text (a huge traceback, a step's
whole output). Used by tests/integration/test_huge_error_text.py: its `task.failed.v1`
must be recorded, with the text cut, not refused as oversized."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from temporalio.exceptions import ApplicationError

from activities.recorder import EventRecorder
from schemas.plugins import TaskTypePlugin
from workflows.context import StepContext

HUGE_ERROR_BYTES = 100_000


class HugeErrorInput(BaseModel):
    pass


async def run_huge_error(ctx: StepContext, raw: dict[str, Any]) -> dict[str, Any]:
    raise ApplicationError("e" * HUGE_ERROR_BYTES, type="HugeError", non_retryable=True)


def no_activities(recorder: EventRecorder) -> list[Any]:
    return []


PLUGIN = TaskTypePlugin(
    name="test.huge_error",
    input_model=HugeErrorInput,
    runner=run_huge_error,
    activities=no_activities,
    sandbox_modules=("tests.huge_error_plugin",),
)
