"""What a task type's runner may do: the extension point's workflow side.

A runner is deterministic workflow code (no I/O, no clocks, no randomness
outside `workflow.*`). It plans steps and calls `run_step` for each; the
`TaskWorkflow` around it owns everything a client sees: pause and cancel at
step boundaries, task-level events, search attributes, timeouts and the
failure events of attempts that could not report themselves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

ResultT = TypeVar("ResultT", bound=BaseModel)


class StepContext(Protocol):
    @property
    def task_id(self) -> str: ...

    def set_total_steps(self, total: int) -> None: ...

    async def emit_event(self, event_type: str, data: dict[str, Any]) -> None:
        """Record an event of task code (workflows/authoring.py), in order with the rest."""
        ...

    async def delay(self, seconds: float) -> None:
        """A durable timer that a cancel cuts short."""
        ...

    async def run_step(
        self,
        activity: str,
        step: BaseModel,
        *,
        index: int,
        name: str,
        result_type: type[ResultT],
        attempt_timeout: timedelta,
    ) -> ResultT:
        """Run one step activity after the step boundary (pause/cancel take effect there).

        The activity records its own started/progress/completed/failed events.
        """
        ...


TaskRunner = Callable[[StepContext, dict[str, Any]], Awaitable[dict[str, Any]]]
