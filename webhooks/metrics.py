"""The webhook dispatcher's figures, and the metrics that export them.

A dispatcher keeps its own `WebhookStats` (`WebhookDispatcher.stats()`, no module
globals); whoever runs one registers it in its runtime's `Metrics` with
`register_webhook_metrics`. The metric names are part of the operator's interface
(deploy/prometheus/alerts.yml and the dashboard read them): keep them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from telemetry.metrics import Metrics

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


@dataclass(slots=True)
class WebhookStats:
    """Counters since start, and the backlog as of the dispatcher's last refresh."""

    sent: int = 0  # acknowledged with a 2xx
    attempts_failed: int = 0  # attempts answered otherwise, or not at all
    failed: int = 0  # deliveries given up on (or failed by a 410)
    pending: int = 0  # deliveries not yet done, in the whole store
    oldest_pending_seconds: float = 0.0  # age of the oldest undelivered webhook
    latency_seconds_sum: float = 0.0  # from the event's recording to its acknowledgement
    latency_count: int = 0
    listening: bool = False  # the NOTIFY wake-up is in place (else it only polls)

    def delivered(self, latency_seconds: float) -> None:
        self.sent += 1
        self.latency_seconds_sum += latency_seconds
        self.latency_count += 1


class WebhookStatsSource(Protocol):
    def stats(self) -> WebhookStats: ...

    def on_latency(self, observe: Callable[[float], None]) -> None: ...


def register_webhook_metrics(metrics: Metrics, source: WebhookStatsSource) -> None:
    """Metrics in `metrics` that read `source.stats()` at every scrape, and the
    delivery latency histogram `source` reports into."""

    def read(field: str) -> Callable[[], float]:
        return lambda: float(getattr(source.stats(), field))

    figures = [
        ("taskplane_webhook_deliveries_sent", "Webhook deliveries acknowledged (2xx)",
         "sent", True),
        ("taskplane_webhook_attempts_failed", "Webhook attempts that got no 2xx",
         "attempts_failed", True),
        ("taskplane_webhook_deliveries_failed", "Webhook deliveries given up on",
         "failed", True),
        ("taskplane_webhook_deliveries_pending", "Webhook deliveries not yet done",
         "pending", False),
        ("taskplane_webhook_oldest_pending_seconds", "Age of the oldest pending delivery",
         "oldest_pending_seconds", False),
    ]  # fmt: skip
    for name, description, field, counter in figures:
        (metrics.counter if counter else metrics.gauge)(name, description, read(field))
    latency = metrics.histogram(
        "taskplane_webhook_delivery_latency_seconds",
        "Seconds from an event's recording to its acknowledged webhook delivery",
        (),
        LATENCY_BUCKETS,
    )
    source.on_latency(latency.observe)
