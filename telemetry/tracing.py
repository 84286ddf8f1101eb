"""OpenTelemetry tracing: on when OPENOBSERVE_OTLP_ENDPOINT is set, free when not.

`configure` builds this module's tracer provider (OTLP over HTTP, batched, so
an export never blocks the caller). Hot paths test `tracing.enabled` (a module
bool) before touching OpenTelemetry at all: with tracing off an event costs
one attribute read. No Django import: the quoting worker, the simulator and
the outbox relay use it as they are.

Context crosses process boundaries as W3C `traceparent`: in Kafka message
headers (`kafka_headers` / `context_from_headers`), in the HTTP requests to
the Order Service (`carrier`), in outbox rows and in the pool-change
notices the API sends the worker (`carrier` / `context_from_carrier`). So one
trace runs from a person's command or a market event to the orders it caused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanProcessor
from opentelemetry.trace import Link, Span, SpanKind

enabled = False
provider: TracerProvider | None = None
tracer: trace.Tracer = trace.NoOpTracer()

TRACES_PATH = "/v1/traces"


def otlp_traces_url(endpoint: str) -> str:
    """OPENOBSERVE_OTLP_ENDPOINT as the OTLP/HTTP traces URL: the base
    (http://openobserve:5080/api/default) or the full URL both work."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(TRACES_PATH) else endpoint + TRACES_PATH


def configure(
    service_name: str,
    endpoint: str | None,
    *,
    exporter: SpanExporter | None = None,
    processor: SpanProcessor | None = None,
) -> bool:
    """Turns tracing on for this process (True) or leaves it off (no endpoint,
    no exporter). Credentials for the collector come from the standard
    OTEL_EXPORTER_OTLP_HEADERS variable, read by the exporter, never logged."""
    global enabled, provider, tracer
    if not endpoint and exporter is None and processor is None:
        return False
    if processor is None:
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=otlp_traces_url(str(endpoint)))
        processor = BatchSpanProcessor(exporter)
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("mms")
    enabled = True
    return True


def shutdown() -> None:
    """Flushes what is batched and turns tracing off."""
    global enabled, provider, tracer
    if provider is not None:
        provider.shutdown()
    enabled, provider, tracer = False, None, trace.NoOpTracer()


@contextlib.contextmanager
def span(
    name: str,
    *,
    context: Context | None = None,
    links: Sequence[Context] = (),
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span | None]:
    """A current span (child of `context`, or of the current one), or nothing
    when tracing is off."""
    if not enabled:
        yield None
        return
    span_links = [Link(trace.get_current_span(c).get_span_context()) for c in links]
    with tracer.start_as_current_span(
        name, context=context, kind=kind, attributes=attributes, links=span_links
    ) as current:
        yield current


class Deferred:
    """A span decided on but started only if something needs it as a parent.

    The worker makes one per consumed Kafka message (tracing on): thousands a
    second of market data, of which a few cause orders. Only those become
    spans — started at the message's arrival, ended when their orders go —
    so tracing costs in proportion to orders, not to the feed's rate (an SDK
    span costs tens of µs here: bench/observability.py)."""

    __slots__ = ("_context", "attributes", "kind", "name", "parent", "start_ns")

    def __init__(
        self,
        name: str,
        *,
        parent: Context | None,
        kind: SpanKind,
        attributes: Mapping[str, Any],
        start_ns: int,
    ) -> None:
        self.name = name
        self.parent = parent
        self.kind = kind
        self.attributes = attributes
        self.start_ns = start_ns
        self._context: Context | None = None

    def context(self) -> Context:
        """The span's context, starting and ending the span the first time."""
        if self._context is None:
            span = tracer.start_span(
                self.name,
                context=self.parent,
                kind=self.kind,
                attributes=self.attributes,
                start_time=self.start_ns,
            )
            span.end()
            self._context = trace.set_span_in_context(span)
        return self._context


Cause = Context | Deferred


def resolve(cause: Cause | None) -> Context | None:
    """A cause as a context to parent spans on (a deferred span starts now)."""
    return cause.context() if isinstance(cause, Deferred) else cause


def trace_id() -> str | None:
    """The current trace's id (32 hex digits), for log entries; None outside a trace."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def carrier(context: Context | None = None) -> dict[str, str]:
    """The current (or given) context as W3C headers; {} when tracing is off."""
    if not enabled:
        return {}
    out: dict[str, str] = {}
    propagate.inject(out, context=context)
    return out


def context_from_carrier(headers: Mapping[str, str] | None) -> Context | None:
    if not enabled or not headers:
        return None
    return propagate.extract(dict(headers))


def kafka_headers(context: Context | None = None) -> list[tuple[str, bytes]]:
    return [(k, v.encode()) for k, v in carrier(context).items()]


def context_from_headers(
    headers: Sequence[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None] | None,
) -> Context | None:
    """The producer's context from a Kafka message's headers (None if it sent none)."""
    if not enabled or not headers:
        return None
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    found = {
        k: v.decode(errors="replace") if isinstance(v, bytes) else v
        for k, v in pairs
        if v is not None
    }
    return propagate.extract(found) if "traceparent" in found else None
