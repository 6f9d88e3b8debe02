"""The event budget's rules (store/budget.py) and the demo inputs' plans (schemas/tasks.py)."""

from __future__ import annotations

import pytest

from schemas import TERMINAL_EVENT_TYPES
from schemas.tasks import DemoFanoutInput, DemoPipelineInput, PlannedEvents
from store.budget import EventBudget, EventBudgetExceededError


def test_terminal_and_step_failed_events_are_exempt() -> None:
    budget = EventBudget(10)
    for event_type in TERMINAL_EVENT_TYPES | {"task.step.failed.v1"}:
        assert budget.limit_for(event_type) is None
        budget.check("t", 10_000, event_type)  # no error, whatever the count
    for event_type in ("task.step.progress.v1", "task.step.started.v1", "task.paused.v1"):
        assert budget.limit_for(event_type) == 10


def test_the_error_names_the_budget_and_its_setting() -> None:
    budget = EventBudget(10)
    budget.check("t", 9, "task.step.progress.v1")  # the 10th event is fine
    with pytest.raises(EventBudgetExceededError) as caught:
        budget.check("t", 10, "task.step.progress.v1")
    assert "10 events per task" in str(caught.value)
    assert "TASKPLANE_MAX_EVENTS_PER_TASK" in str(caught.value)
    assert budget.stats.refused == 1


def test_pipeline_plan_counts_every_event_it_can_record() -> None:
    plain = DemoPipelineInput(steps=3, progress_ticks=4)
    # created, 3 x (started, 4 ticks, completed), completed
    assert plain.planned_events() == 2 + 3 * 6
    flaky = DemoPipelineInput(steps=3, progress_ticks=4, flaky_at_step=2, flaky_attempts=9)
    assert flaky.planned_events() == plain.planned_events() + 2 * 6  # at most 2 retries
    hung = DemoPipelineInput(steps=3, progress_ticks=4, hang_at_step=1, hang_attempts=1)
    assert hung.planned_events() == plain.planned_events() + 2  # started, failed
    beyond = DemoPipelineInput(steps=3, flaky_at_step=4)
    assert beyond.planned_events() == DemoPipelineInput(steps=3).planned_events()


def test_the_largest_inputs_plan_far_more_than_the_default_budget() -> None:
    huge = DemoPipelineInput(steps=1000, progress_ticks=100_000)
    assert huge.planned_events() == 2 + 1000 * 100_002
    fan = DemoFanoutInput(branches=1000, progress_ticks=100_000)
    assert fan.planned_events() == 2 + 1000 * 100_002
    assert isinstance(huge, PlannedEvents)
    assert isinstance(fan, PlannedEvents)
