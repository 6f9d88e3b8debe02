"""On a Redis Cluster the worker's stream gauges come one per partition stream (label
`partition`), so the alert rules compare a partition's lag with a partition's length."""

from __future__ import annotations

from typing import Any

from broker import MemoryBroker
from broker.redis_stream_reports import GroupBacklog, StreamBacklog
from telemetry.metrics import Metrics
from tests.metrics_text import required, sample
from worker.metrics import WorkerGauges, register_worker_metrics


class _Pool:
    def get_stats(self) -> dict[str, int]:
        return {}


def _scrape(backlog: StreamBacklog) -> str:
    metrics = Metrics()
    pool: Any = _Pool()
    gauges = WorkerGauges(pool=pool, broker=MemoryBroker(), backlog=backlog)
    register_worker_metrics(metrics, gauges)
    return metrics.text().decode()


def _group(lag: int, partition: str | None) -> GroupBacklog:
    return GroupBacklog("webhooks", 0, lag, 0.0, behind_trim=False, partition=partition)


def test_a_cluster_backlog_is_labelled_by_partition() -> None:
    text = _scrape(StreamBacklog(30, [_group(4, "0"), _group(9, "1")], (("0", 10), ("1", 20))))
    assert required(text, "taskplane_durable_group_lag", group="webhooks", partition="1") == 9
    assert required(text, "taskplane_durable_stream_length", partition="0") == 10
    assert required(text, "taskplane_durable_stream_length", partition="1") == 20


def test_one_redis_keeps_its_unlabelled_series() -> None:
    text = _scrape(StreamBacklog(30, [_group(4, None)]))
    assert required(text, "taskplane_durable_stream_length") == 30
    assert sample(text, "taskplane_durable_stream_length", partition="0") is None
    assert required(text, "taskplane_durable_group_lag", group="webhooks") == 4
