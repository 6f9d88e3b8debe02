"""The metrics of the recording path's limits: the event budget and progress coalescing."""

from __future__ import annotations

from activities.coalesce import RateGates
from store.budget import EventBudget
from telemetry.metrics import Metrics


def register_limit_metrics(metrics: Metrics, budget: EventBudget, rates: RateGates) -> None:
    metrics.counter(
        "taskplane_event_budget_refused",
        "events refused because their task had recorded TASKPLANE_MAX_EVENTS_PER_TASK events"
        " (each such task fails)",
        lambda: budget.stats.refused,
    )
    metrics.counter(
        "taskplane_progress_coalesced",
        "progress events not recorded because a later value of the same step replaced them"
        " (TASKPLANE_PROGRESS_MAX_RATE)",
        lambda: rates.stats.coalesced,
    )
    metrics.gauge(
        "taskplane_progress_rate_gates",
        "tasks whose progress is being rate-limited in this worker right now",
        lambda: len(rates),
    )
