"""A task type shipped by another package: the extension point, not a fork.

A package declares an entry point in the `taskplane.task_types` group that
names a `TaskTypePlugin`. The API uses its `input_model` to validate
`POST /tasks`; the worker registers its workflow-side `runner` and the
activities `activities(recorder)` returns. See docs/task-types.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

from schemas.admission import ConcurrencyPolicy, register_concurrency
from schemas.tasks import register_task_input

ENTRY_POINT_GROUP = "taskplane.task_types"


@dataclass(frozen=True)
class TaskTypePlugin:
    name: str
    input_model: type[BaseModel]
    # Deterministic workflow code: `async def run(ctx: StepContext, input: dict) -> dict`.
    runner: Callable[..., Any]
    # Given the worker's `EventRecorder`, the step activities this type needs.
    activities: Callable[[Any], Sequence[Callable[..., Any]]] = field(default=lambda _: ())
    # Modules the Temporal sandbox must pass through (the runner's module at least).
    sandbox_modules: Sequence[str] = ()
    # Its start rate per (tenant, key), what happens over it, its debounce: the JSON
    # shape of `settings.rate_limits.TypeRates`, read by the API (docs/rate-limits.md).
    rate_limit: Mapping[str, Any] | None = None
    # At most `limit` tasks of the type run at once per concurrency key, and what a task
    # over it does (docs/flow-control.md); none: `TASKPLANE_CONCURRENCY_LIMIT`, if set.
    concurrency: ConcurrencyPolicy | None = None


def installed_plugins() -> list[TaskTypePlugin]:
    plugins = []
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        plugin = entry.load()
        if not isinstance(plugin, TaskTypePlugin):
            raise TypeError(f"entry point {entry.name!r} is not a TaskTypePlugin")
        plugins.append(plugin)
    return plugins


def register_input_models(plugins: Sequence[TaskTypePlugin]) -> None:
    for plugin in plugins:
        register_task_input(plugin.name, plugin.input_model)
        if plugin.concurrency is not None:
            register_concurrency(plugin.name, plugin.concurrency)
