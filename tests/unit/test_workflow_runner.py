"""Which runner workflow code runs in (`TASKPLANE_WORKFLOW_SANDBOX`), and where the sandbox
still guards determinism: the replay tests (tests/unit/test_replay.py) use it."""

from __future__ import annotations

import pytest
from temporalio.worker import UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from settings import Settings
from tests.unit import test_replay
from worker.temporal_worker import production_runner


def test_workers_run_workflows_unsandboxed_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASKPLANE_WORKFLOW_SANDBOX", raising=False)
    settings = Settings()
    assert settings.workflow_sandbox is False
    assert isinstance(production_runner(settings.workflow_sandbox), UnsandboxedWorkflowRunner)


def test_the_setting_puts_them_back_in_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKPLANE_WORKFLOW_SANDBOX", "true")
    assert isinstance(production_runner(Settings().workflow_sandbox), SandboxedWorkflowRunner)


def test_stored_histories_replay_in_the_sandbox() -> None:
    # A clock, random or I/O call in workflow code fails these replays, whatever workers run.
    assert isinstance(
        test_replay.replayer().config().get("workflow_runner"), SandboxedWorkflowRunner
    )
