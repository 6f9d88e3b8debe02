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
import socket

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

log = logging.getLogger(__name__)

# A runtime owns a thread pool and, here, a listening socket: one per address per process.
_runtimes: dict[str, Runtime] = {}


class SdkMetricsPortTakenError(RuntimeError):
    """The SDK metrics port is taken: the worker refuses to start rather than run unwatched."""


def metrics_runtime(host: str, port: int | None) -> Runtime | None:
    """A runtime exporting the SDK's metrics on host:port; None (the default runtime)
    when the port is off. Port 0 takes a free port (logged); a taken port raises
    `SdkMetricsPortTakenError`."""
    if port is None:
        return None
    if port == 0:
        port = _free_port(host)
    address = f"{host}:{port}"
    if address in _runtimes:
        return _runtimes[address]
    config = PrometheusConfig(
        bind_address=address, counters_total_suffix=True, durations_as_seconds=True
    )
    try:
        runtime = Runtime(telemetry=TelemetryConfig(metrics=config))
    except ValueError as exc:  # Core's "Failed starting Prometheus exporter: …"
        raise SdkMetricsPortTakenError(
            f"the Temporal SDK metrics port {address} is taken ({exc}); set"
            " TASKPLANE_WORKER_METRICS_TEMPORAL_PORT to a free port, or to 0 for any free one"
        ) from exc
    _runtimes[address] = runtime
    log.info("Temporal SDK metrics served", extra={"url": f"http://{address}/metrics"})
    return runtime


def _free_port(host: str) -> int:
    """A port free now (Core binds it a moment later; a collision then fails the start)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
