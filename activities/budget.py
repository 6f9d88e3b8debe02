"""What a step or the `record_event` activity does when the store refuses an event for
want of budget (store/budget.py): fail for good, naming the budget.

Non-retryable, so the step's attempt is not retried (every retry would be refused
too) and the workflow records `task.failed.v1` with this error, which the budget
lets through: the task's stream ends with it.
"""

from __future__ import annotations

import logging

from temporalio.exceptions import ApplicationError

from store.budget import EventBudgetExceededError

log = logging.getLogger(__name__)

# The ApplicationError type of a task that ran out of event budget.
EVENT_BUDGET_EXCEEDED = "EventBudgetExceeded"


def budget_failure(exc: EventBudgetExceededError) -> ApplicationError:
    """The error to raise (`raise budget_failure(exc) from exc`); logs it once."""
    log.warning(
        "event budget exceeded: the task fails",
        extra={"task_id": exc.task_id, "event_type": exc.event_type, "limit": exc.limit},
    )
    return ApplicationError(str(exc), type=EVENT_BUDGET_EXCEEDED, non_retryable=True)
