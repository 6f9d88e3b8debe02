"""What one publish to the broker costs: a latency histogram, and a span while tracing.

Wrapped around every publish of a recorded event (the recorder's, and the outbox
relay's), so an operator sees the broker's latency and failures as Prometheus
`taskplane_event_publish_seconds{outcome, path}` and, with tracing on, a
`publish` span under the activity that recorded the event.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from opentelemetry.trace import SpanKind, Status, StatusCode

from telemetry.metrics import Metrics
from telemetry.tracing import tracer, tracing_enabled

# Publishes run under a timeout of about a second: buckets from 0.5 ms to past it.
PUBLISH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

PUBLISH_SECONDS = "taskplane_event_publish_seconds"


class PublishTimer:
    """Times (and traces) publishes into one runtime's histogram."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        # Without a runtime (a test's recorder): a histogram nobody serves.
        self._histogram = (metrics or Metrics()).histogram(
            PUBLISH_SECONDS,
            "Time to publish one recorded event to the broker (outcome ok or error)",
            ("outcome", "path"),
            PUBLISH_BUCKETS,
        )

    @contextmanager
    def timed(
        self, task_id: str, event_type: str, *, path: Literal["recorder", "relay"] = "recorder"
    ) -> Iterator[None]:
        """Time (and trace) the publish in the body; an exception counts as `outcome="error"`."""
        started = time.perf_counter()
        outcome = "error"
        try:
            if tracing_enabled():
                with _span(task_id, event_type, path):
                    yield
            else:  # no span machinery at all while tracing is off
                yield
            outcome = "ok"
        finally:
            self._histogram.labels(outcome, path).observe(time.perf_counter() - started)


@contextmanager
def _span(task_id: str, event_type: str, path: str) -> Iterator[None]:
    with tracer().start_as_current_span(
        "publish",
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "redis",
            "messaging.destination.name": f"task.{task_id}",
            "taskplane.task_id": task_id,
            "taskplane.event_type": event_type,
            "taskplane.publish_path": path,
        },
    ) as span:
        try:
            yield
        except BaseException as exc:
            # A publish timeout arrives as CancelledError, which the SDK does not mark.
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
