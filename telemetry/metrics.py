"""Metrics as Prometheus text, one registry per runtime (an API app, a worker).

A runtime makes one `Metrics` and registers what its components count: gauges
and counters are read from the components' own `stats()` at scrape time, so the
hot path only bumps an integer; histograms on hot paths (every publish, every
request, every handled event) are prometheus_client's, ~2.5 µs an observation
(the OpenTelemetry SDK's `Histogram.record` cost ~25-40 µs on the 2-core
machine, under load, on a worker whose CPU is its throughput). Nothing is
process-global: two runtimes in one process (a test with an API and a worker)
export their own figures, and a test reads the instance it built.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST

LabelledValues = Iterable[tuple[float, Mapping[str, str]]]
Read = Callable[[], float]
ReadEach = Callable[[], LabelledValues]
# What a component calls to count an error: (component, kind).
CountError = Callable[[str, str], None]

# No `_created` series beside every counter and histogram: they double the output and
# no alert uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]


def ignore_error(component: str, kind: str) -> None:
    """The `CountError` of a component built without a runtime (tests, benchmarks)."""


@dataclass(frozen=True)
class _Family:
    name: str
    description: str
    read: ReadEach
    counter: bool


class _ReadAtScrape(Collector):
    """Yields every registered family, read from its component at scrape time."""

    def __init__(self) -> None:
        self.families: list[_Family] = []

    def collect(self) -> Iterator[Metric]:
        for family in self.families:
            try:
                samples = list(family.read())
            except Exception:  # a scrape must not fail because one reading did
                log.exception("metric not read", extra={"metric": family.name})
                continue
            labels = sorted(samples[0][1]) if samples else []
            made: CounterMetricFamily | GaugeMetricFamily
            if family.counter:
                made = CounterMetricFamily(family.name, family.description, labels=labels)
            else:
                made = GaugeMetricFamily(family.name, family.description, labels=labels)
            for value, values in samples:
                made.add_metric([values[key] for key in labels], value)
            yield made


@dataclass
class Metrics:
    """One runtime's metrics: what it serves on `/metrics`."""

    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=False)
    )
    errors: Tally[tuple[str, str]] = field(default_factory=Tally)
    _reads: _ReadAtScrape = field(default_factory=_ReadAtScrape)

    def __post_init__(self) -> None:
        # What every Prometheus client exports: the process's memory, CPU, fds, GC.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.registry.register(self._reads)
        self.counters(
            "taskplane_errors",
            "Errors an operator should know about, by where they happened and what they were",
            self._error_samples,
        )

    def gauge(self, name: str, description: str, read: Read) -> None:
        self.gauges(name, description, lambda: [(read(), {})])

    def counter(self, name: str, description: str, read: Read) -> None:
        """A monotonic count, served as `<name>_total`."""
        self.counters(name, description, lambda: [(read(), {})])

    def gauges(self, name: str, description: str, read: ReadEach) -> None:
        """A family of gauges: `read()` gives (value, labels) pairs."""
        self._reads.families.append(_Family(name, description, read, counter=False))

    def counters(self, name: str, description: str, read: ReadEach) -> None:
        self._reads.families.append(_Family(name, description, read, counter=True))

    def histogram(
        self, name: str, description: str, labels: Sequence[str], buckets: Sequence[float]
    ) -> Histogram:
        """A hot-path histogram (seconds) in this runtime's registry."""
        return Histogram(
            name, description, labelnames=labels, buckets=buckets, registry=self.registry
        )

    def count_error(self, component: str, kind: str) -> None:
        """One error: `component` (api, sse, reconciler, …) and `kind` (postgres, redis,
        temporal, unhandled, …). One counter for every error, so one alert can watch them."""
        self.errors[(component, kind)] += 1

    def _error_samples(self) -> LabelledValues:
        return [
            (float(count), {"component": component, "kind": kind})
            for (component, kind), count in sorted(self.errors.items())
        ]

    def pool(self, stats: Callable[[], Mapping[str, int] | None]) -> None:
        """The runtime's Postgres pool (psycopg_pool's `get_stats()`): size, idle, waiting.

        A request that waits for a connection waits behind every query in flight:
        `taskplane_db_pool_waiting` above zero for long means the pool is too small
        for the load (or Postgres too slow).
        """
        for key, name, description in (
            ("pool_size", "taskplane_db_pool_size", "Postgres connections the pool holds"),
            ("pool_max", "taskplane_db_pool_max", "the pool's maximum size"),
            ("pool_available", "taskplane_db_pool_available", "idle connections in the pool"),
            ("requests_waiting", "taskplane_db_pool_waiting", "requests waiting for a connection"),
        ):

            def read(key: str = key) -> LabelledValues:
                current = stats()
                return [] if current is None else [(float(current.get(key, 0)), {})]

            self.gauges(name, description, read)

    def text(self) -> bytes:
        return generate_latest(self.registry)

    def value(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """One sample as served (tests, and a runtime's own checks)."""
        return self.registry.get_sample_value(name, dict(labels or {}))

    def serve(self, host: str, port: int) -> MetricsServer:
        """Serve on http://host:port/metrics (port 0: any free one, logged with the port
        it got).

        A port that is taken raises `MetricsPortTakenError`: a worker running with no
        metrics at all (two workers on one host with the same port) is a worker nobody
        can watch, so it fails at start with a message that says what to do.
        """
        try:
            server, thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise MetricsPortTakenError(
                f"the metrics port {host}:{port} is taken ({exc.strerror or exc}); set"
                " TASKPLANE_WORKER_METRICS_PORT to a free port, or to 0 for any free one"
            ) from exc
        served = MetricsServer(server, thread)
        log.info("metrics served", extra={"url": f"http://{host}:{served.port}/metrics"})
        return served


@dataclass
class MetricsServer:
    """A worker's `/metrics` endpoint (a thread of prometheus_client's own server)."""

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
