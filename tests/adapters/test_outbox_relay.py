"""The outbox relay against the real PostgreSQL, the session's Kafka and the
schema-registry stand-in: what the pool services write reaches Kafka once, in
order, decodable, and only when committed; one relay publishes at a time; a
broker outage or a poison row stops the relay without losing or reordering
anything.

Each test publishes into a topic namespace of its own (tests/kafka.py) and
reads its topics from the beginning up to their end offsets after the relay
is done, keeping the events it created (by event_id).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from django.db import connection, transaction
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from common import outbox_relay
from common.actors import Actor
from common.models import OutboxEvent
from common.outbox_relay import (
    RELAY_LOCK_KEY,
    relay_batch,
    relay_producer_config,
    run_relay,
)
from messaging import topics as names
from messaging.avro import AvroCodec
from messaging.kafka import consumer_config
from pools import services
from pools.events import RISK_TRIGGERED_TOPIC, STATE_CHANGED_TOPIC
from pools.models import PoolConfig
from telemetry import tracing
from tests.conftest import ROOT, free_port
from tests.factories import PoolFactory
from tests.kafka import Bus, namespace_on, read_to_end, unique_group

pytestmark = pytest.mark.django_db(transaction=True)

OPS = Actor("olga-ops")
TOPIC_PARTITIONS = 3
WAIT_S = 15.0
# Short, so a batch sent to a dead broker fails within the test's patience.
DOWN_DELIVERY_TIMEOUT_S = 1.0
DOWN_FLUSH_TIMEOUT_S = 4.0


# ------------------------------------------------------------------ fixtures


@pytest.fixture
def topics(kafka_broker: str) -> Iterator[Bus]:
    """The test's own namespace, the published topics in it."""
    with namespace_on(kafka_broker, TOPIC_PARTITIONS) as bus:
        yield bus


@pytest.fixture
def codec(schema_registry_url: str) -> AvroCodec:
    return AvroCodec(schema_registry_url)


@pytest.fixture
def producer(topics: Bus) -> Iterator[Producer]:
    producer = Producer(relay_producer_config(bootstrap=topics.bootstrap))
    yield producer
    producer.flush(5)


# ------------------------------------------------------------------ helpers


@dataclass(frozen=True)
class Received:
    topic: str
    partition: int
    offset: int
    key: str
    event_id: str
    value: dict[str, Any]
    headers: dict[str, bytes] = field(default_factory=dict)


def toggle(pool: PoolConfig, times: int) -> None:
    """enable/pause `times` times: 2 × times state events for the pool, each committed."""
    for _ in range(times):
        services.pool_enable(pool=pool, actor=OPS, reason="test")
        services.pool_pause(pool=pool, actor=OPS, reason="test")


def outbox_rows(**filters: Any) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(**filters).order_by("id"))


def consume_all(bus: Bus, codec: AvroCodec, wanted: Iterable[str]) -> list[Received]:
    """Every message on the namespace's published topics whose event_id is in
    `wanted`, in log order (up to the end offsets: nothing sent before is missed)."""
    wanted = set(wanted)
    consumer = Consumer(
        consumer_config(bootstrap=bus.bootstrap, group_id=unique_group("outbox-relay-test"))
    )
    try:
        messages = read_to_end(consumer, bus.topics.names(names.PUBLISHED), timeout_s=WAIT_S)
    finally:
        consumer.close()
    received: list[Received] = []
    for message in messages:
        headers = dict(message.headers() or [])
        event_id = headers.get("event_id")
        if event_id is None or event_id.decode() not in wanted:
            continue
        topic = bus.topics.logical(message.topic())
        received.append(
            Received(
                topic=topic,
                partition=message.partition(),
                offset=message.offset(),
                key=message.key().decode(),
                event_id=event_id.decode(),
                value=codec.decode(topic, message.value()),
                headers=headers,
            )
        )
    return received


def assert_published_once_in_order(received: list[Received], rows: list[OutboxEvent]) -> None:
    """Each row exactly once, as its record, keyed by its key, and in id order per key."""
    by_event = {str(row.event_id): row for row in rows}
    ids = [r.event_id for r in received]
    assert sorted(ids) == sorted(by_event), "every row exactly once"
    for message in received:
        row = by_event[message.event_id]
        assert message.topic == row.topic
        assert message.key == row.key
        assert message.value == {**row.payload, "event_id": str(row.event_id)}
    # Per key and topic, the log holds the rows in id order (one key, one partition).
    seen: dict[tuple[str, str], list[int]] = defaultdict(list)
    for message in sorted(received, key=lambda m: (m.topic, m.partition, m.offset)):
        seen[(message.topic, message.key)].append(by_event[message.event_id].pk)
    for stream, pks in seen.items():
        assert pks == sorted(pks), f"{stream} out of order: {pks}"
    expected = defaultdict(list)
    for row in rows:
        expected[(row.topic, row.key)].append(row.pk)
    assert dict(seen) == dict(expected)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        threading.Event().wait(0.05)


# ------------------------------------------------------------------ tests


def test_pool_events_are_published_in_order_once_and_marked(
    producer: Producer, codec: AvroCodec, topics: Bus
):
    first, second = PoolFactory(), PoolFactory()
    toggle(first, 2)
    toggle(second, 1)
    services.pool_enable(pool=first, actor=OPS)
    services.pool_halt(pool=first, actor=OPS, trigger="LOSS", detail="max loss")
    services.pool_halt(pool=second, actor=OPS, trigger="EMERGENCY_KILL", detail="ops")
    rows = outbox_rows()
    assert len(rows) == 11
    assert {row.topic for row in rows} == {STATE_CHANGED_TOPIC, RISK_TRIGGERED_TOPIC}

    assert relay_batch(producer=producer, codec=codec, topics=topics.topics) == 11
    assert (
        relay_batch(producer=producer, codec=codec, topics=topics.topics) == 0
    )  # nothing left: nothing resent

    published = outbox_rows()
    assert all(row.published_at is not None and row.attempts == 0 for row in published)
    received = consume_all(topics, codec, (str(row.event_id) for row in rows))
    assert_published_once_in_order(received, rows)
    halted = [r for r in received if r.topic == RISK_TRIGGERED_TOPIC]
    assert {(r.key, r.value["trigger"]) for r in halted} == {
        (first.symbol, "LOSS"),
        (second.symbol, "EMERGENCY_KILL"),
    }


def test_a_rolled_back_change_publishes_nothing(producer: Producer, codec: AvroCodec, topics: Bus):
    pool = PoolFactory()
    rolled_back: list[str] = []

    def enable_then_fail() -> None:
        with transaction.atomic():
            services.pool_enable(pool=pool, actor=OPS)
            rolled_back.extend(
                str(e) for e in OutboxEvent.objects.values_list("event_id", flat=True)
            )
            raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError, match="changed my mind"):
        enable_then_fail()
    assert len(rolled_back) == 1
    assert OutboxEvent.objects.count() == 0
    services.pool_halt(pool=pool, actor=OPS, trigger="STALE_DATA", detail="no book")

    assert relay_batch(producer=producer, codec=codec, topics=topics.topics) == 2
    rows = outbox_rows()
    received = consume_all(topics, codec, [*rolled_back, *(str(row.event_id) for row in rows)])
    assert_published_once_in_order(received, rows)
    # The enable never happened: the one state change is the halt's, from PAUSED
    # (found by topic: the log's two topics are read in no set order).
    changes = [r.value for r in received if r.topic == STATE_CHANGED_TOPIC]
    assert [(c["from_state"], c["to_state"]) for c in changes] == [("PAUSED", "HALTED")]


def test_a_second_relay_publishes_nothing_while_the_first_holds_the_lock(
    producer: Producer, codec: AvroCodec, topics: Bus
):
    toggle(PoolFactory(), 1)
    held, release = threading.Event(), threading.Event()

    def other_relay() -> None:  # holds the relay lock in its own transaction
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [RELAY_LOCK_KEY])
                held.set()
                release.wait(WAIT_S)
        finally:
            connection.close()

    thread = threading.Thread(target=other_relay)
    thread.start()
    try:
        assert held.wait(WAIT_S)
        assert relay_batch(producer=producer, codec=codec, topics=topics.topics) == 0
        assert all(row.published_at is None for row in outbox_rows())
    finally:
        release.set()
        thread.join(WAIT_S)
    assert relay_batch(producer=producer, codec=codec, topics=topics.topics) == 2


def test_two_relays_at_once_publish_every_row_once_in_order(
    codec: AvroCodec, topics: Bus, schema_registry_url: str
):
    pools = [PoolFactory() for _ in range(3)]
    toggle(pools[0], 5)
    stop = threading.Event()
    batches: list[int] = []
    failures: list[BaseException] = []

    def relay() -> None:  # its own producer, codec and database connection
        try:
            run_relay(
                make_producer=lambda: Producer(relay_producer_config(bootstrap=topics.bootstrap)),
                codec=AvroCodec(schema_registry_url),
                topics=topics.topics,
                stop=stop,
                poll_interval=0.02,
                limit=7,  # small batches, so the relays take turns many times
                on_batch=lambda outcome: batches.append(outcome.published),
            )
        except BaseException as exc:  # surfaced in the main thread
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=relay) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(4):  # more events arrive while the relays run
            for pool in pools:
                toggle(pool, 1)
        wait_until(
            lambda: not OutboxEvent.objects.filter(published_at__isnull=True).exists(),
            "every row published",
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(WAIT_S)
    assert not any(thread.is_alive() for thread in threads), "run_relay did not stop promptly"
    assert failures == []

    rows = outbox_rows()
    assert len(rows) == 10 + 4 * 3 * 2
    assert sum(batches) == len(rows)  # no row was published by both relays
    received = consume_all(topics, codec, (str(row.event_id) for row in rows))
    assert_published_once_in_order(received, rows)


def test_a_broker_outage_leaves_rows_unpublished_until_it_is_back(
    producer: Producer, codec: AvroCodec, topics: Bus
):
    toggle(PoolFactory(), 1)
    dead = Producer(
        relay_producer_config(
            bootstrap=f"127.0.0.1:{free_port()}", delivery_timeout_s=DOWN_DELIVERY_TIMEOUT_S
        )
    )
    for attempt in (1, 2):
        assert (
            relay_batch(
                producer=dead, codec=codec, topics=topics.topics, flush_timeout=DOWN_FLUSH_TIMEOUT_S
            )
            == 0
        )
        rows = outbox_rows()
        assert [row.published_at for row in rows] == [None, None]
        assert [row.attempts for row in rows] == [attempt, attempt]
        assert all("timed out" in row.last_error.lower() for row in rows), rows[0].last_error

    assert (
        relay_batch(producer=producer, codec=codec, topics=topics.topics) == 2
    )  # the broker is reachable again
    rows = outbox_rows()
    assert all(row.published_at is not None for row in rows)
    received = consume_all(topics, codec, (str(row.event_id) for row in rows))
    assert_published_once_in_order(received, rows)


def test_a_poison_row_stops_the_relay_until_it_is_repaired(
    producer: Producer, codec: AvroCodec, topics: Bus, caplog: pytest.LogCaptureFixture
):
    a, b = PoolFactory(), PoolFactory()
    services.pool_enable(pool=a, actor=OPS)
    with transaction.atomic():  # a row the schema refuses: no "reason"
        services.pool_enable(pool=b, actor=OPS)
        poison = OutboxEvent.objects.latest("id")
        payload = dict(poison.payload)
        reason = payload.pop("reason")
        OutboxEvent.objects.filter(pk=poison.pk).update(payload=payload)
    services.pool_pause(pool=a, actor=OPS)  # later rows, of another key and of the same key
    services.pool_pause(pool=b, actor=OPS)
    before = dict(outbox_relay.COUNTERS)

    with caplog.at_level(logging.ERROR, logger="common.outbox_relay"):
        assert relay_batch(producer=producer, codec=codec, topics=topics.topics) == 1
        assert relay_batch(producer=producer, codec=codec, topics=topics.topics) == 0
    first, stuck, *later = outbox_rows()
    assert first.published_at is not None
    assert stuck.pk == poison.pk
    assert stuck.published_at is None
    assert stuck.attempts == 2
    assert "cannot encode" in stuck.last_error
    assert "reason" in stuck.last_error
    assert [(row.published_at, row.attempts) for row in later] == [(None, 0), (None, 0)]
    assert f"outbox row {poison.pk}" in caplog.text
    assert outbox_relay.COUNTERS["poisoned"] - before["poisoned"] == 2

    received = consume_all(topics, codec, (str(row.event_id) for row in outbox_rows()))
    assert [r.event_id for r in received] == [str(first.event_id)]

    OutboxEvent.objects.filter(pk=poison.pk).update(payload={**payload, "reason": reason})
    assert relay_batch(producer=producer, codec=codec, topics=topics.topics) == 3
    rows = outbox_rows()
    received = consume_all(topics, codec, (str(row.event_id) for row in rows))
    assert_published_once_in_order(received, rows)


def test_the_command_publishes_until_sigterm(topics: Bus, schema_registry_url: str):
    toggle(PoolFactory(), 2)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mms.settings.test",
        "POSTGRES_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
        **topics.env,
        "SCHEMA_REGISTRY_URL": schema_registry_url,
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
    }
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runoutboxrelay", "--poll-interval", "0.05"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(
            lambda: (
                proc.poll() is not None
                or not OutboxEvent.objects.filter(published_at__isnull=True).exists()
            ),
            "the command to publish the outbox",
        )
        assert proc.poll() is None, proc.communicate()[0]
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    events = [json.loads(line)["event"] for line in output.splitlines() if line.startswith("{")]
    assert "outbox relay: published 4" in events
    assert any(e.startswith("runoutboxrelay: stopped") for e in events)


def test_the_relay_loop_backs_off_on_a_stuck_row_and_stops_promptly(
    topics: Bus, schema_registry_url: str
):
    OutboxEvent.objects.create(
        topic=STATE_CHANGED_TOPIC, key="BTCUSDT-PERP", event_type="PoolStateChanged", payload={}
    )
    stop = threading.Event()

    def relay() -> None:
        try:
            run_relay(
                make_producer=lambda: Producer(relay_producer_config(bootstrap=topics.bootstrap)),
                codec=AvroCodec(schema_registry_url),
                topics=topics.topics,
                stop=stop,
                poll_interval=0.05,
                max_backoff=0.2,
            )
        finally:
            connection.close()

    thread = threading.Thread(target=relay)
    started = time.monotonic()
    thread.start()
    try:
        wait_until(lambda: OutboxEvent.objects.get().attempts >= 5, "five attempts")
        elapsed = time.monotonic() - started
    finally:
        stopping = time.monotonic()
        stop.set()
        thread.join(WAIT_S)
    assert not thread.is_alive()
    assert time.monotonic() - stopping < 1.0, "stop is seen within the wait, not after it"
    # Between attempts 1..5 it waited 0.05, 0.1, 0.2 and 0.2 s (capped), not one poll each.
    assert elapsed >= 0.55
    assert OutboxEvent.objects.get().published_at is None


def test_an_event_is_published_in_the_trace_of_the_change_that_wrote_it(
    producer: Producer, codec: AvroCodec, topics: Bus
):
    """The row keeps the change's traceparent; the relay's produce span is its child
    and goes on in the message's headers, for the consumers to continue."""
    exporter = InMemorySpanExporter()
    tracing.configure("test", None, processor=SimpleSpanProcessor(exporter))
    try:
        pool = PoolFactory()
        with tracing.span("POST /v1/pools/enable") as request:
            assert request is not None
            services.pool_enable(pool=pool, actor=OPS, reason="test")
        (row,) = outbox_rows(key=pool.symbol)
        assert relay_batch(producer=producer, codec=codec, topics=topics.topics) == 1
    finally:
        tracing.shutdown()
    (produce,) = [s for s in exporter.get_finished_spans() if s.name.startswith("kafka.produce")]
    assert produce.context.trace_id == request.get_span_context().trace_id
    assert produce.parent is not None
    assert produce.parent.span_id == request.get_span_context().span_id
    (received,) = consume_all(topics, codec, [str(row.event_id)])
    traceparent = received.headers["traceparent"].decode()
    assert traceparent.split("-")[1:3] == [
        format(produce.context.trace_id, "032x"),
        format(produce.context.span_id, "016x"),
    ]


def test_without_tracing_a_rows_stored_context_still_travels(
    producer: Producer, codec: AvroCodec, topics: Bus
):
    parent = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    pool = PoolFactory()
    services.pool_enable(pool=pool, actor=OPS, reason="test")
    (row,) = outbox_rows(key=pool.symbol)
    OutboxEvent.objects.filter(pk=row.pk).update(trace_context={"traceparent": parent})
    assert relay_batch(producer=producer, codec=codec, topics=topics.topics) == 1
    (received,) = consume_all(topics, codec, [str(row.event_id)])
    assert received.headers["traceparent"] == parent.encode()
