"""Task type name → runner. Passed through the sandbox, so registrations made at
worker start (built-ins and plugins, docs/task-types.md) are seen by every run.

A registration may declare the type's concurrency limit per key and its strategy
(`ConcurrencyPolicy`, docs/flow-control.md); it lands in `schemas.admission`, where
the API reads it when it creates a task (the run carries the decision in its input).
"""

from __future__ import annotations

from schemas.admission import ConcurrencyPolicy, register_concurrency
from workflows.context import TaskRunner

_RUNNERS: dict[str, TaskRunner] = {}


def register_runner(
    task_type: str, runner: TaskRunner, *, concurrency: ConcurrencyPolicy | None = None
) -> None:
    existing = _RUNNERS.get(task_type)
    if existing is not None and existing is not runner:
        raise ValueError(f"task type {task_type!r} already has a runner")
    _RUNNERS[task_type] = runner
    if concurrency is not None:
        register_concurrency(task_type, concurrency)


def runner_for(task_type: str) -> TaskRunner | None:
    return _RUNNERS.get(task_type)
