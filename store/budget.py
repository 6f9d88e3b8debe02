"""The per-task event budget, enforced by the recording statement itself.

A task may record at most `limit` events (its `last_seq`, every chapter counted).
The check runs in the append statement, under the task row's lock that assigns the
sequence, so concurrent steps of one task can never overshoot it, and it costs no
extra query. Past the budget an event is refused with `EventBudgetExceededError`
(nothing written): the step or the workflow that tried fails the task, and the
events that say so stay recordable: the terminal ones and `task.step.failed.v1`
(a failure must never be lost for want of budget), and `task.reset.v1` (its own
statement). So a refused task's stream still ends with its `task.failed.v1`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas import TERMINAL_EVENT_TYPES

# Recorded whatever the count: they end a step attempt or the task.
EXEMPT_TYPES: frozenset[str] = TERMINAL_EVENT_TYPES | {"task.step.failed.v1"}

SETTING = "TASKPLANE_MAX_EVENTS_PER_TASK"


class EventBudgetExceededError(RuntimeError):
    """The task has recorded its budget of events; this one was refused, nothing written."""

    def __init__(self, task_id: str, limit: int, event_type: str) -> None:
        super().__init__(
            f"task {task_id} exceeded its event budget: {limit} events per task ({SETTING});"
            f" {event_type} refused"
        )
        self.task_id = task_id
        self.limit = limit
        self.event_type = event_type


@dataclass
class BudgetStats:
    refused: int = 0  # events refused for want of budget


@dataclass
class EventBudget:
    """`limit` events per task (an `EventStore` built without one checks none)."""

    limit: int
    stats: BudgetStats = field(default_factory=BudgetStats)

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("an event budget must allow at least one event")

    def limit_for(self, event_type: str) -> int | None:
        """The limit the statement checks for an event of `event_type` (None: exempt)."""
        return None if event_type in EXEMPT_TYPES else self.limit

    def check(self, task_id: str, last_seq: int, event_type: str) -> None:
        """Raise when a task at `last_seq` may not take an event of `event_type`."""
        limit = self.limit_for(event_type)
        if limit is not None and last_seq >= limit:
            self.stats.refused += 1
            raise EventBudgetExceededError(task_id, limit, event_type)


def limit_for(budget: EventBudget | None, event_type: str) -> int | None:
    return None if budget is None else budget.limit_for(event_type)
