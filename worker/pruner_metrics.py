"""What the pruner (worker/pruner.py) adds to the worker's `/metrics`, read from its stats."""

from __future__ import annotations

from telemetry.metrics import LabelledValues, Metrics
from worker.pruner import Pruner


def register_pruner_metrics(metrics: Metrics, pruner: Pruner) -> None:
    """Rows pruned by table, and when the last round ran (how long it took)."""
    stats = pruner.stats

    def rows() -> LabelledValues:
        return [(float(n), {"table": table}) for table, n in sorted(stats.rows.items())]

    def last_run() -> LabelledValues:
        return [] if stats.last_run is None else [(stats.last_run, {})]

    def last_run_seconds() -> LabelledValues:
        return [] if stats.last_run_seconds is None else [(stats.last_run_seconds, {})]

    metrics.counters("taskplane_pruned_rows", "rows deleted by retention, by table", rows)
    metrics.counter(
        "taskplane_pruned_orphans",
        "tasks whose workflow never started, whose owner and webhook rows were removed",
        lambda: stats.orphans,
    )
    metrics.gauges(
        "taskplane_prune_last_run_timestamp_seconds",
        "when this worker's pruner last finished a round (unix time)",
        last_run,
    )
    metrics.gauges(
        "taskplane_prune_last_run_seconds", "how long the last prune round took", last_run_seconds
    )
    metrics.counter(
        "taskplane_event_partitions_made",
        "partitions of the events table made ahead of time",
        lambda: stats.partitions_made,
    )
    metrics.counter(
        "taskplane_event_partitions_dropped",
        "partitions of the events table dropped (every task in them pruned)",
        lambda: stats.partitions_dropped,
    )
    metrics.counter(
        "taskplane_event_partition_dropped_bytes",
        "bytes freed by dropping partitions of the events table",
        lambda: stats.partition_bytes_dropped,
    )
    metrics.counter(
        "taskplane_event_partition_lock_timeouts",
        "partition DDL given up for a lock (recordings held it); tried again next round",
        lambda: stats.partition_lock_timeouts,
    )

    def gauge(value: int | None) -> LabelledValues:
        return [] if value is None else [(float(value), {})]

    metrics.gauges(
        "taskplane_event_partitions",
        "partitions of the events table (the default one not counted)",
        lambda: gauge(stats.partitions),
    )
    metrics.gauges(
        "taskplane_event_partitions_overdue",
        "partitions past retention still holding a task (open, or closed lately)",
        lambda: gauge(stats.partitions_overdue),
    )
    metrics.counter(
        "taskplane_prune_skipped_rounds",
        "rounds skipped because another worker's pruner held the lock",
        lambda: stats.skipped_rounds,
    )
