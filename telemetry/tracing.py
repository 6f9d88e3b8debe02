"""Traces through the OpenTelemetry SDK, off unless a process turns them on.

With `TASKPLANE_TRACING_EXPORTER=none` (the default) no provider is installed:
no span is made anywhere, the Temporal tracing interceptor is not added and
envelopes carry no `traceparent`, so tracing costs nothing while it is off.
A process that turns it on (`configure_tracing`) gets one trace per task:
`POST /tasks` → Temporal's client and workflow spans (the SDK's
`TracingInterceptor` carries the context in Temporal headers) → each activity →
the publish of each event → each SSE delivery, which finds its parent in the
envelope's W3C `traceparent` (the CloudEvents distributed-tracing extension).

The provider is kept here rather than only in OpenTelemetry's global, which can
be set once per process: tests install an in-memory one and take it away again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Literal, TypedDict

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from settings import Settings

log = logging.getLogger(__name__)

TRACER_NAME = "taskplane"
_PROPAGATOR = TraceContextTextMapPropagator()
_NO_OP_TRACER = trace.NoOpTracer()

_provider: TracerProvider | None = None
_global_set = False


class TraceHeaders(TypedDict, total=False):
    """W3C Trace Context, as headers or as CloudEvents extension attributes."""

    traceparent: str
    tracestate: str


def configure_tracing(
    settings: Settings, *, component: Literal["api", "worker"]
) -> TracerProvider | None:
    """Install the provider the settings ask for (None when tracing is off)."""
    global _global_set
    if settings.tracing_exporter == "none":
        return None
    exporter: SpanExporter
    if settings.tracing_exporter == "otlp":
        # Imported here: only a process that exports over OTLP pays for its import.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=settings.tracing_otlp_endpoint)
    else:
        exporter = ConsoleSpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"{settings.tracing_service_name}-{component}"}),
        sampler=ParentBased(TraceIdRatioBased(settings.tracing_sample_ratio)),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    install_tracer_provider(provider)
    if not _global_set:  # libraries that ask OpenTelemetry's global get the same provider
        trace.set_tracer_provider(provider)
        _global_set = True
    log.info(
        "tracing on",
        extra={"exporter": settings.tracing_exporter, "ratio": settings.tracing_sample_ratio},
    )
    return provider


def install_tracer_provider(provider: TracerProvider | None) -> None:
    """Make `provider` the one every Taskplane span goes to; None turns tracing off."""
    global _provider
    _provider = provider


def shutdown_tracing() -> None:
    """Export what is still buffered; processes leave through `os._exit`, which would not."""
    if _provider is not None:
        _provider.shutdown()


def tracing_enabled() -> bool:
    return _provider is not None


def tracer() -> Tracer:
    if _provider is None:
        return _NO_OP_TRACER
    return _provider.get_tracer(TRACER_NAME)


def current_trace_headers() -> TraceHeaders:
    """`traceparent` (and `tracestate`) of the current span; empty when there is none."""
    headers = TraceHeaders()
    if _provider is None:
        return headers
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    if "traceparent" in carrier:
        headers["traceparent"] = carrier["traceparent"]
    if "tracestate" in carrier:
        headers["tracestate"] = carrier["tracestate"]
    return headers


def context_from_headers(headers: Mapping[str, str]) -> Context | None:
    """The remote span context W3C trace headers name, or None when they name none."""
    if "traceparent" not in headers:
        return None
    context = _PROPAGATOR.extract(headers)
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


@contextmanager
def event_span(
    name: str, envelope_json: str, attributes: Mapping[str, AttributeValue]
) -> Iterator[None]:
    """A CONSUMER span for handling one event, a child of the span that recorded it.

    The parent comes from the envelope's `traceparent`, so deliveries join the
    task's trace; the span that is current here (an SSE request's) is linked.
    Not made current, so it may stay open across a generator's `yield`: it ends
    when the body ends, that is after the consumer took the event.
    """
    if _provider is None:
        yield
        return
    here = trace.get_current_span().get_span_context()
    span = tracer().start_span(
        name,
        context=context_from_headers(_trace_headers_of(envelope_json)),
        kind=SpanKind.CONSUMER,
        links=[Link(here)] if here.is_valid else None,
        attributes=attributes,
    )
    try:
        yield
    except GeneratorExit:
        span.set_attribute("taskplane.abandoned", True)  # the consumer went away
        raise
    except BaseException as exc:
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        span.end()


def _trace_headers_of(envelope_json: str) -> dict[str, str]:
    try:
        envelope = json.loads(envelope_json)
    except ValueError:
        return {}
    if not isinstance(envelope, dict):
        return {}
    return {
        key: value
        for key in ("traceparent", "tracestate")
        if isinstance(value := envelope.get(key), str)
    }
