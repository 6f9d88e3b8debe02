"""The reconciler's counts are its runtime's metrics, read from its own stats."""

from __future__ import annotations

from telemetry.metrics import Metrics
from worker.reconciler import ReconcilerStats, register_reconciler_metrics


def test_reconciled_runs_and_failing_workflow_tasks_are_exported_per_runtime() -> None:
    stats, metrics, other = ReconcilerStats(), Metrics(), Metrics()
    register_reconciler_metrics(metrics, stats)
    register_reconciler_metrics(other, ReconcilerStats())
    stats.reconciled.update({"terminated": 2, "timed_out": 1})
    stats.workflow_tasks_failing = 3
    assert metrics.value("taskplane_reconciled_total", {"reason": "terminated"}) == 2
    assert metrics.value("taskplane_reconciled_total", {"reason": "timed_out"}) == 1
    assert metrics.value("taskplane_workflow_tasks_failing_found_total") == 3
    assert other.value("taskplane_workflow_tasks_failing_found_total") == 0
