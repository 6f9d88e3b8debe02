"""Task type name → runner. Passed through the sandbox, so registrations made at
worker start (built-ins and plugins, docs/task-types.md) are seen by every run."""

from __future__ import annotations

from workflows.context import TaskRunner

_RUNNERS: dict[str, TaskRunner] = {}


def register_runner(task_type: str, runner: TaskRunner) -> None:
    existing = _RUNNERS.get(task_type)
    if existing is not None and existing is not runner:
        raise ValueError(f"task type {task_type!r} already has a runner")
    _RUNNERS[task_type] = runner


def runner_for(task_type: str) -> TaskRunner | None:
    return _RUNNERS.get(task_type)
