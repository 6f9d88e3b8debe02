"""`rollout.approval`: `demo.approval` whose result says which build served its end.

The rolling-deploy test (tests/e2e/test_rolling_deploy.py) runs two workers with
different `TASKPLANE_WORKER_BUILD_ID`s (`python -m tests.rollout_worker`) and APIs
that accept the type (`python -m tests.rollout_api`): a task's `served_by` shows
which version's code completed it. It is added after the runner's last command,
so a history replays the same on either build.
"""

from __future__ import annotations

import os
from typing import Any

from schemas.plugins import TaskTypePlugin
from schemas.tasks import DemoApprovalInput
from workflows.approval import run_approval
from workflows.context import StepContext

ROLLOUT_APPROVAL = "rollout.approval"
SERVED_BY = os.environ.get("TASKPLANE_WORKER_BUILD_ID", "unversioned")  # read at import


async def run_rollout_approval(ctx: StepContext, raw: dict[str, Any]) -> dict[str, Any]:
    return {**await run_approval(ctx, raw), "served_by": SERVED_BY}


PLUGIN = TaskTypePlugin(
    name=ROLLOUT_APPROVAL,
    input_model=DemoApprovalInput,
    runner=run_rollout_approval,
    sandbox_modules=("tests.rollout_plugin",),
)
