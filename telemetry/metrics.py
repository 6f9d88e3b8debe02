"""Metrics through the OpenTelemetry SDK, exposed as Prometheus text.

Gauges are observed from the components' own counters at scrape time, so the
hot path only bumps an integer. The API serves them on `GET /metrics`; the
worker, which has no HTTP server of its own, on `serve_metrics`' port.

Histograms on hot paths (every publish, every request, every handled event) are
prometheus_client's, in the same registry and so on the same endpoint: one
observation costs ~2.5 µs there against ~25-40 µs for the OpenTelemetry SDK's
`Histogram.record` (measured on the 2-core machine, under load), on a worker
whose CPU is its throughput.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)

log = logging.getLogger(__name__)

METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST

LabelledValues = Iterable[tuple[float, Mapping[str, str]]]

# No `_created` series beside every histogram: they double the output and no alert uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]

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


ERRORS = Counter(
    "taskplane_errors",
    "Errors an operator should know about, by where they happened and what they were",
    ["component", "kind"],
    registry=REGISTRY,
)


def count_error(component: str, kind: str) -> None:
    """One error: `component` (api, sse, reconciler, …) and `kind` (postgres, redis,
    temporal, unhandled, …). One counter for every error, so one alert can watch them."""
    ERRORS.labels(component=component, kind=kind).inc()


def metrics_text() -> bytes:
    return generate_latest(REGISTRY)


def histogram(
    name: str, description: str, labels: Sequence[str], buckets: Sequence[float]
) -> Histogram:
    """A hot-path histogram (seconds), served with everything else; make it once per process."""
    return Histogram(name, description, labelnames=labels, buckets=buckets, registry=REGISTRY)


def observe_each(
    name: str, description: str, read: Callable[[], LabelledValues], *, counter: bool = False
) -> None:
    """Like `observe`, for a family: `read()` gives (value, labels) pairs."""

    def callback(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(value, dict(labels)) for value, labels in read()]

    if counter:
        meter().create_observable_counter(name, callbacks=[callback], description=description)
    else:
        meter().create_observable_gauge(name, callbacks=[callback], description=description)


@dataclass
class MetricsServer:
    """The worker's `/metrics` endpoint (a thread of prometheus_client's own server)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class MetricsPortTakenError(RuntimeError):
    """The metrics port is taken: a worker refuses to start rather than run unwatched."""


def serve_metrics(host: str, port: int) -> MetricsServer:
    """Serve every registered metric on http://host:port/metrics (port 0: any free one,
    logged with the port it got).

    A port that is taken raises `MetricsPortTakenError`: a worker running with no
    metrics at all (two workers on one host with the same port) is a worker nobody
    can watch, so it fails at start with a message that says what to do.
    """
    try:
        server, thread = start_http_server(port, addr=host, registry=REGISTRY)
    except OSError as exc:
        raise MetricsPortTakenError(
            f"the metrics port {host}:{port} is taken ({exc.strerror or exc}); set"
            " TASKPLANE_WORKER_METRICS_PORT to a free port, or to 0 for any free one"
        ) from exc
    served = MetricsServer(server, thread)
    log.info("metrics served", extra={"url": f"http://{host}:{served.port}/metrics"})
    return served


_pool_sources: list[Callable[[], Mapping[str, int] | None]] = []


def observe_pool(stats: Callable[[], Mapping[str, int] | None]) -> None:
    """The process's Postgres pool (psycopg_pool's `get_stats()`): size, idle, waiting.

    A request that waits for a connection waits behind every query in flight:
    `taskplane_db_pool_waiting` above zero for long means the pool is too small
    for the load (or Postgres too slow). A process has one pool; should it hold
    more (a test running an API and a worker), the figures are their sums.
    """
    _pool_sources.append(stats)
    if len(_pool_sources) > 1:
        return
    for key, name, description in (
        ("pool_size", "taskplane_db_pool_size", "Postgres connections the pool holds"),
        ("pool_max", "taskplane_db_pool_max", "the pool's maximum size"),
        ("pool_available", "taskplane_db_pool_available", "idle connections in the pool"),
        ("requests_waiting", "taskplane_db_pool_waiting", "requests waiting for a connection"),
    ):

        def read(key: str = key) -> float:
            pools = (source() for source in _pool_sources)
            return float(sum(pool.get(key, 0) for pool in pools if pool is not None))

        observe(name, description, read)
