"""OpenTelemetry tracing: one trace from the core's callback to the relocation's activities.

The W3C trace context (``traceparent``, ``tracestate``) travels:

* HTTP callback headers -> the receiver's span per callback (a new trace when none came);
* that span -> the Kafka record headers of every event it published (the spool keeps them);
* Kafka record headers -> the consumer's span per event;
* the consumer's span -> Temporal headers, through :class:`TracingInterceptor` on the client
  (and so on the worker built from it) -> the workflow and activity spans.

Polled events have no caller: each publish outside a span starts its own trace.

Without :func:`configure_tracing` (``log.traces = "off"``) the API's no-op provider is in force:
spans are not recorded, but an incoming context is still passed on, so a trace started by the
core stays whole across processes that do record. Spans never carry a SUPI, GPSI or IP address:
UEs appear as :func:`subscriber.logs.pseudonym` values.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from temporalio.contrib.opentelemetry import TracingInterceptor

from subscriber.errors import SubscriberError
from subscriber.settings import LogSettings

TRACER_NAME = "subscriber"
TRACE_HEADERS = ("traceparent", "tracestate")
"""The W3C trace-context headers carried on HTTP and as Kafka record headers."""

KafkaHeaders = tuple[tuple[str, bytes], ...]

_recording = False


def tracer() -> trace.Tracer:
    """The project's tracer (a no-op one until :func:`configure_tracing` installs a provider)."""
    return trace.get_tracer(TRACER_NAME)


def _exporter(settings: LogSettings) -> SpanExporter | None:
    if settings.traces == "console":
        return ConsoleSpanExporter()
    if settings.traces == "otlp":
        try:
            module = importlib.import_module(
                "opentelemetry.exporter.otlp.proto.http.trace_exporter"
            )
        except ImportError as exc:
            raise SubscriberError(
                "log.traces = otlp needs opentelemetry-exporter-otlp-proto-http "
                "(pip install 'subscriber[otlp]')"
            ) from exc
        exporter: SpanExporter = module.OTLPSpanExporter(endpoint=settings.otlp_endpoint)
        return exporter
    return None


def configure_tracing(
    settings: LogSettings, *, service: str, processor: SpanProcessor | None = None
) -> TracerProvider | None:
    """Install the process's tracer provider, once, at start (the CLI's processes call it).

    Args:
        settings: ``traces`` picks the exporter; ``off`` installs nothing.
        service: the ``service.name`` resource attribute (``subscriber-receiver``, ...).
        processor: a span processor to use instead of the settings' exporter (tests).

    Returns:
        The provider installed, or None when tracing is off.
    """
    if processor is None:
        exporter = _exporter(settings)
        if exporter is None:
            return None
        processor = BatchSpanProcessor(exporter)
    global _recording
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    _recording = True
    return provider


def shutdown_tracing(provider: TracerProvider | None) -> None:
    """Export what is pending and stop recording (the process's spans become no-ops again)."""
    global _recording
    if provider is not None:
        provider.shutdown()
    _recording = False


def recording() -> bool:
    """True once :func:`configure_tracing` installed a provider (and until it is shut down)."""
    return _recording


def temporal_interceptors() -> list[TracingInterceptor]:
    """Interceptors for ``Client.connect``; the worker built on that client inherits them."""
    return [TracingInterceptor(tracer())]


class HttpHeaders(Protocol):
    """An HTTP request's headers by lower-case name (granian's RSGI headers, a dict)."""

    def get(self, key: str, default: Any = None) -> Any:
        """The value of header ``key``, or ``default``."""
        ...


def context_from_http(headers: HttpHeaders) -> otel_context.Context | None:
    """The trace context of an HTTP request's headers; None when it sent none."""
    carrier: dict[str, str] = {}
    for name in ("traceparent", "tracestate"):
        value = headers.get(name)
        if value:
            carrier[name] = value
    return extract(carrier) if carrier else None


def context_from_kafka(headers: Sequence[tuple[str, bytes]] | None) -> otel_context.Context | None:
    """The trace context of a Kafka record's headers; None when it has none."""
    carrier = {
        name: value.decode("latin-1")
        for name, value in headers or ()
        if name in TRACE_HEADERS and value
    }
    return extract(carrier) if carrier else None


def kafka_headers() -> KafkaHeaders:
    """The current trace context as Kafka record headers (empty outside a valid span)."""
    if not in_span():
        return ()
    carrier: dict[str, str] = {}
    inject(carrier)
    return tuple((name, carrier[name].encode()) for name in TRACE_HEADERS if name in carrier)


@contextmanager
def _attached(context: otel_context.Context) -> Iterator[None]:
    token = otel_context.attach(context)
    try:
        yield
    finally:
        otel_context.detach(token)


def continue_trace(
    name: str,
    parent: otel_context.Context | None,
    *,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
    attributes: dict[str, Any] | None = None,
) -> AbstractContextManager[Any]:
    """A span continuing ``parent`` (an extracted context), or starting a trace when None.

    While nothing records (tracing off) no span is made: an incoming context is only made
    current, so it still reaches Kafka headers and Temporal, and without one this is free.
    """
    if _recording:
        return span(name, parent=parent or otel_context.Context(), kind=kind, attributes=attributes)
    if parent is not None:
        return _attached(parent)
    return nullcontext()


def in_span() -> bool:
    """True when a valid span (recorded or only propagated) is current."""
    return trace.get_current_span().get_span_context().is_valid


@contextmanager
def span(
    name: str,
    *,
    parent: otel_context.Context | None = None,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
    attributes: dict[str, Any] | None = None,
) -> Iterator[trace.Span]:
    """A current span, child of ``parent`` (an extracted context) or of the current one."""
    with tracer().start_as_current_span(
        name, context=parent, kind=kind, attributes=attributes
    ) as current:
        yield current
