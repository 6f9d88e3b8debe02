"""The Temporal SDK's own metrics (pollers, slots, task latencies), served by its Core.

Chosen over the SDK's buffered route (`MetricBuffer` drained into our OpenTelemetry
meter by `temporalio.contrib.opentelemetry.MetricsExporter`): that one costs Python
CPU for every metric update, on a worker the notes show is CPU-bound, and is marked
experimental. Core's Prometheus exporter runs in Rust on its own port, so the worker
exposes two scrape targets: ours (`worker_metrics_port`) and Temporal's
(`worker_metrics_temporal_port`). Names follow Temporal's SDK metrics reference
(`temporal_` prefix, `_total` counters, durations in seconds).
"""

from __future__ import annotations

import logging

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

log = logging.getLogger(__name__)

# A runtime owns a thread pool and, here, a listening socket: one per address per process.
_runtimes: dict[str, Runtime] = {}


def metrics_runtime(host: str, port: int | None) -> Runtime | None:
    """A runtime exporting the SDK's metrics on host:port; None (the default runtime)
    when the port is off or taken — logged, and the worker runs on without them."""
    if port is None:
        return None
    address = f"{host}:{port}"
    if address in _runtimes:
        return _runtimes[address]
    config = PrometheusConfig(
        bind_address=address, counters_total_suffix=True, durations_as_seconds=True
    )
    try:
        runtime = Runtime(telemetry=TelemetryConfig(metrics=config))
    except ValueError as exc:  # Core's "Failed starting Prometheus exporter: …"
        log.error("Temporal SDK metrics not served: %s", exc, extra={"address": address})
        return None
    _runtimes[address] = runtime
    log.info("Temporal SDK metrics served", extra={"url": f"http://{address}/metrics"})
    return runtime
