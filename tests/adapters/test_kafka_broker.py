"""The project's Kafka settings against a real broker (Tansu, one per session):
co-partitioned topics, per-key order, a fast group join with the development
timeouts, and committed offsets that survive a consumer restart."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from quoting_worker.adapters import kafka_config
from quoting_worker.adapters.kafka_config import (
    DEVELOPMENT_GROUP_TIMEOUTS,
    TopicMismatchError,
    consumer_config,
    ensure_topics,
    producer_config,
)
from tests.adapters import broker_fixture
from tests.adapters.broker_fixture import unique_group, unique_topic

kafka_broker = broker_fixture.kafka_broker  # the session's broker, as a fixture of this module

Rebalance = Callable[[Consumer, list[TopicPartition]], None]

SYMBOLS = ("BTCUSDT-PERP", "ETHUSDT-PERP", "PEPEUSDT-PERP", "SOLUSDT-PERP", "XRPUSDT-PERP")


def _partition_counts(bootstrap: str) -> dict[str, int]:
    topics = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=5).topics
    return {name: len(topic.partitions) for name, topic in topics.items()}


def _consumer(bootstrap: str, group_id: str) -> Consumer:
    return Consumer(
        consumer_config(bootstrap=bootstrap, group_id=group_id, timeouts=DEVELOPMENT_GROUP_TIMEOUTS)
    )


def _produce(bootstrap: str, topic: str, messages: list[tuple[str, str]]) -> dict[str, set[int]]:
    """Sends (key, value) pairs in order; returns the partitions each key landed on."""
    landed: dict[str, set[int]] = defaultdict(set)
    errors: list[KafkaError] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            errors.append(error)
        else:
            landed[message.key().decode()].add(message.partition())

    producer = Producer(producer_config(bootstrap=bootstrap))
    for key, value in messages:
        producer.produce(topic, key=key, value=value, on_delivery=delivered)
    assert producer.flush(10) == 0
    assert errors == []
    return landed


def _consume(consumer: Consumer, count: int, timeout: float = 15.0) -> list[Message]:
    received: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(received) < count and time.monotonic() < deadline:
        message = consumer.poll(0.1)
        if message is None:
            continue
        assert message.error() is None, message.error()
        received.append(message)
    return received


def test_ensure_topics_creates_co_partitioned_topics_once(kafka_broker: str) -> None:
    snap, delta = unique_topic("md.orderbook.snap"), unique_topic("md.orderbook.delta")

    ensure_topics(kafka_broker, {snap: 3, delta: 3}, co_partitioned=[snap, delta])
    ensure_topics(kafka_broker, {snap: 3, delta: 3}, co_partitioned=[snap, delta])  # no-op

    counts = _partition_counts(kafka_broker)
    assert (counts[snap], counts[delta]) == (3, 3)


def test_ensure_topics_refuses_a_partition_count_that_does_not_fit(kafka_broker: str) -> None:
    mark, events = unique_topic("md.mark"), unique_topic("engine.event")
    ensure_topics(kafka_broker, {mark: 2}, co_partitioned=[mark])

    with pytest.raises(TopicMismatchError, match=f"{mark} has 2, needs 3"):
        ensure_topics(kafka_broker, {mark: 3})
    # A new consumed topic must match the existing ones; nothing is created.
    with pytest.raises(TopicMismatchError, match="one partition count"):
        ensure_topics(kafka_broker, {events: 3}, co_partitioned=[mark, events])
    with pytest.raises(TopicMismatchError, match="one partition count"):
        ensure_topics(kafka_broker, {mark: 2, events: 3}, co_partitioned=[mark, events])

    assert events not in _partition_counts(kafka_broker)


def test_the_default_co_partitioned_set_is_the_consumed_topics() -> None:
    with pytest.raises(TopicMismatchError, match="one partition count"):
        ensure_topics(
            "127.0.0.1:1",  # refused before any broker is asked
            {"md.mark.v1": 3, "engine.event.v1": 6},
            timeout=0.1,
        )


def test_each_symbol_lands_on_one_partition_and_is_consumed_in_order(kafka_broker: str) -> None:
    topic = unique_topic("md.orderbook.delta")
    ensure_topics(kafka_broker, {topic: 4}, co_partitioned=[topic])
    sent = [(symbol, f"{symbol}:{seq}") for seq in range(30) for symbol in SYMBOLS]

    landed = _produce(kafka_broker, topic, sent)

    assert all(len(partitions) == 1 for partitions in landed.values()), landed
    consumer = _consumer(kafka_broker, unique_group())
    try:
        consumer.subscribe([topic])
        received = _consume(consumer, len(sent))
    finally:
        consumer.close()
    by_symbol: dict[str, list[str]] = defaultdict(list)
    for message in received:
        symbol = message.key().decode()
        assert {message.partition()} == landed[symbol]
        by_symbol[symbol].append(message.value().decode())
    assert by_symbol == {symbol: [f"{symbol}:{seq}" for seq in range(30)] for symbol in SYMBOLS}


def test_a_group_join_with_the_development_timeouts_takes_seconds(kafka_broker: str) -> None:
    topic = unique_topic("engine.event")
    ensure_topics(kafka_broker, {topic: 4}, co_partitioned=[topic])
    group = unique_group()
    assigned: dict[str, set[int]] = {"first": set(), "second": set()}

    def on_assign(name: str) -> Rebalance:
        def record(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            assigned[name] |= {tp.partition for tp in partitions}

        return record

    def on_revoke(name: str) -> Rebalance:
        def record(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            assigned[name] -= {tp.partition for tp in partitions}

        return record

    first, second = _consumer(kafka_broker, group), _consumer(kafka_broker, group)
    try:
        started = time.monotonic()
        first.subscribe([topic], on_assign=on_assign("first"), on_revoke=on_revoke("first"))
        while not assigned["first"] and time.monotonic() - started < 20:
            first.poll(0.05)
        join_s = time.monotonic() - started
        print(f"\nconsumer group join (session.timeout.ms=2000): {join_s:.2f} s")
        assert assigned["first"] == {0, 1, 2, 3}

        # A second worker joins: the range assignor hands it some partitions, and
        # no partition is owned twice.
        started = time.monotonic()
        second.subscribe([topic], on_assign=on_assign("second"), on_revoke=on_revoke("second"))
        while time.monotonic() - started < 30 and not (
            assigned["second"] and not assigned["first"] & assigned["second"]
        ):
            first.poll(0.05)
            second.poll(0.05)
        print(f"rebalance to two members: {time.monotonic() - started:.2f} s")
        assert assigned["first"] | assigned["second"] == {0, 1, 2, 3}
        assert assigned["first"]
        assert assigned["second"]
        assert not assigned["first"] & assigned["second"]
    finally:
        second.close()
        first.close()


def test_committed_offsets_resume_after_a_restart(kafka_broker: str) -> None:
    topic = unique_topic("engine.event")
    ensure_topics(kafka_broker, {topic: 1}, co_partitioned=[topic])
    group = unique_group()
    _produce(kafka_broker, topic, [("BTCUSDT-PERP", f"fill-{n}") for n in range(10)])

    consumer = _consumer(kafka_broker, group)
    consumer.subscribe([topic])
    first_run = _consume(consumer, 4)
    consumer.commit(message=first_run[-1], asynchronous=False)  # work done for four
    _consume(consumer, 3, timeout=1.0)  # read but never committed: comes again
    consumer.close()

    consumer = _consumer(kafka_broker, group)
    try:
        consumer.subscribe([topic])
        second_run = _consume(consumer, 6)
    finally:
        consumer.close()

    assert [m.value().decode() for m in first_run] == [f"fill-{n}" for n in range(4)]
    assert [m.value().decode() for m in second_run] == [f"fill-{n}" for n in range(4, 10)]


def test_a_zero_fetch_wait_is_refused() -> None:
    # The broker then answers nothing (KAFKA.md); the setting is a mistake.
    with pytest.raises(ValueError, match="fetch_wait_max_ms"):
        consumer_config(bootstrap="x:1", group_id="g", fetch_wait_max_ms=0)


def test_production_and_development_group_timeouts_differ() -> None:
    prod = consumer_config(bootstrap="x:1", group_id="g")
    dev = consumer_config(bootstrap="x:1", group_id="g", timeouts=DEVELOPMENT_GROUP_TIMEOUTS)

    assert (dev["session.timeout.ms"], dev["heartbeat.interval.ms"]) == (2000, 300)
    assert prod["session.timeout.ms"] > dev["session.timeout.ms"]
    assert set(kafka_config.CONSUMED_TOPICS).isdisjoint(kafka_config.PUBLISHED_TOPICS)
