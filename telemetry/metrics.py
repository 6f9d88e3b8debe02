"""Metrics through the OpenTelemetry SDK, exposed as Prometheus text.

Gauges are observed from the components' own counters at scrape time, so the
hot path only bumps an integer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST

_provider: MeterProvider | None = None


def meter() -> Meter:
    """The process's meter; the provider (and its Prometheus reader) is made once."""
    global _provider
    if _provider is None:
        _provider = MeterProvider(metric_readers=[PrometheusMetricReader()])
    return _provider.get_meter("taskplane")


def observe(
    name: str, description: str, read: Callable[[], float], *, counter: bool = False
) -> None:
    """Export `read()` at every scrape, as a gauge or a monotonic counter."""

    def callback(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(read())]

    if counter:
        meter().create_observable_counter(name, callbacks=[callback], description=description)
    else:
        meter().create_observable_gauge(name, callbacks=[callback], description=description)


def metrics_text() -> bytes:
    return generate_latest(REGISTRY)
