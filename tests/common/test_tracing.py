"""Tracing (telemetry/tracing.py): off costs nothing and carries nothing; on, context
crosses Kafka headers, HTTP headers, outbox rows and pool-change notices."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from common.actors import Actor
from common.models import OutboxEvent
from common.notify import POOL_CHANGED_CHANNEL
from common.redis import redis_client
from pools import services
from telemetry import tracing
from tests.factories import PoolFactory


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure("test", None, processor=SimpleSpanProcessor(exporter))
    try:
        yield exporter
    finally:
        tracing.shutdown()


def by_name(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = [s for s in exporter.get_finished_spans() if s.name == name]
    return span


def test_off_nothing_is_traced_or_carried() -> None:
    assert not tracing.enabled
    with tracing.span("anything") as span:
        assert span is None
        assert tracing.carrier() == {}
        assert tracing.kafka_headers() == []
        assert tracing.trace_id() is None
    assert (
        tracing.context_from_headers(
            [("traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01")]
        )
        is None
    )
    assert not tracing.configure("svc", None)
    assert not tracing.configure("svc", "")


def test_a_kafka_consumer_continues_the_producers_trace(spans: InMemorySpanExporter) -> None:
    with tracing.span("kafka.produce"):
        headers = tracing.kafka_headers()
    assert [k for k, _ in headers] == ["traceparent"]
    with tracing.span("kafka.consume", context=tracing.context_from_headers(headers)):
        pass
    produce, consume = by_name(spans, "kafka.produce"), by_name(spans, "kafka.consume")
    assert consume.context.trace_id == produce.context.trace_id
    assert consume.parent is not None
    assert consume.parent.span_id == produce.context.span_id
    # A message without a traceparent starts nothing.
    assert tracing.context_from_headers([("event_id", b"x")]) is None


def test_a_span_links_the_other_causes_it_batches(spans: InMemorySpanExporter) -> None:
    causes = []
    for name in ("a", "b"):
        with tracing.span(name):
            causes.append(otel_context.get_current())
    with tracing.span("orders.send", context=causes[0], links=causes[1:]):
        pass
    send, a, b = by_name(spans, "orders.send"), by_name(spans, "a"), by_name(spans, "b")
    assert send.context.trace_id == a.context.trace_id
    assert [link.context.span_id for link in send.links] == [b.context.span_id]


def test_the_otlp_url_accepts_a_base_or_the_full_traces_url() -> None:
    base = "http://openobserve:5080/api/default"
    assert tracing.otlp_traces_url(base) == base + "/v1/traces"
    assert tracing.otlp_traces_url(base + "/v1/traces/") == base + "/v1/traces"


def test_an_endpoint_turns_tracing_on_with_the_otlp_exporter() -> None:
    assert tracing.configure("svc", "http://127.0.0.1:9/api/default")
    try:
        assert tracing.enabled
        assert tracing.provider is not None
    finally:
        tracing.shutdown()
    assert not tracing.enabled


@pytest.mark.django_db(transaction=True)
def test_a_pool_change_carries_its_trace_to_the_outbox_and_the_worker_notice(
    spans: InMemorySpanExporter,
) -> None:
    pool = PoolFactory()
    pubsub = redis_client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(POOL_CHANGED_CHANNEL)
    try:
        with tracing.span("POST /v1/pools/enable"):
            services.pool_enable(pool=pool, actor=Actor("olga-ops"), reason="test")
        request = by_name(spans, "POST /v1/pools/enable")
        trace_hex = format(request.context.trace_id, "032x")
        row = OutboxEvent.objects.get(key=pool.symbol)
        assert trace_hex in row.trace_context["traceparent"]
        message = None
        for _ in range(50):
            message = pubsub.get_message(timeout=0.1)
            if message is not None:
                break
        assert message is not None
        notice = json.loads(message["data"])
        assert notice["symbol"] == pool.symbol
        assert trace_hex in notice["trace"]["traceparent"]
    finally:
        pubsub.close()


@pytest.mark.django_db
def test_with_tracing_off_an_outbox_row_carries_no_context() -> None:
    pool = PoolFactory()
    services.pool_enable(pool=pool, actor=Actor("olga-ops"), reason="test")
    assert OutboxEvent.objects.get(key=pool.symbol).trace_context == {}


def test_a_deferred_span_exists_only_once_something_hangs_from_it(
    spans: InMemorySpanExporter,
) -> None:
    with tracing.span("kafka.produce"):
        headers = tracing.kafka_headers()
    arrived = time.time_ns()
    ignored = tracing.Deferred(
        "kafka.consume a", parent=None, kind=SpanKind.CONSUMER, attributes={}, start_ns=arrived
    )
    used = tracing.Deferred(
        "kafka.consume b",
        parent=tracing.context_from_headers(headers),
        kind=SpanKind.CONSUMER,
        attributes={"mms.symbol": "ETHUSDT-PERP"},
        start_ns=arrived,
    )
    assert ignored is not used
    assert [s.name for s in spans.get_finished_spans()] == ["kafka.produce"]
    first = tracing.resolve(used)
    assert tracing.resolve(used) is first  # started once
    with tracing.span("orders.send", context=first):
        pass
    consume, send = by_name(spans, "kafka.consume b"), by_name(spans, "orders.send")
    assert consume.start_time == arrived
    assert consume.context.trace_id == by_name(spans, "kafka.produce").context.trace_id
    assert send.parent is not None
    assert send.parent.span_id == consume.context.span_id
    assert not [s for s in spans.get_finished_spans() if s.name == "kafka.consume a"]
    assert tracing.resolve(None) is None
