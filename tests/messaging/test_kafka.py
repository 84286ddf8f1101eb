"""The project's Kafka settings against the session's Apache Kafka node:
co-partitioned topics created with their settings, per-key order, a fast group
join, exact end offsets, committed offsets that survive a consumer restart, and
topic namespaces that keep stacks apart on one broker."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from messaging import topics as names
from messaging.kafka import (
    MARKET_DATA_RETENTION_MS,
    TopicMismatchError,
    consumer_config,
    ensure_topics,
    mms_topics,
    producer_config,
)
from messaging.topics import Topics
from tests.kafka import unique_group, unique_topic

Rebalance = Callable[[Consumer, list[TopicPartition]], None]

SYMBOLS = ("BTCUSDT-PERP", "ETHUSDT-PERP", "PEPEUSDT-PERP", "SOLUSDT-PERP", "XRPUSDT-PERP")


def _partition_counts(bootstrap: str) -> dict[str, int]:
    topics = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=5).topics
    return {name: len(topic.partitions) for name, topic in topics.items()}


def _consumer(bootstrap: str, group_id: str) -> Consumer:
    return Consumer(consumer_config(bootstrap=bootstrap, group_id=group_id))


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


def test_a_group_join_takes_a_second_and_a_rebalance_splits_the_partitions(
    kafka_broker: str,
) -> None:
    """With the production session timeout: the broker holds no join back
    (group.initial.rebalance.delay.ms=0), and a second member gets its share
    within a heartbeat interval of the first."""
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
        assert assigned["first"] == {0, 1, 2, 3}
        assert join_s < 5, f"the first join took {join_s:.1f} s"

        # A second worker joins: the range assignor hands it some partitions, and
        # no partition is owned twice.
        started = time.monotonic()
        second.subscribe([topic], on_assign=on_assign("second"), on_revoke=on_revoke("second"))
        # Done when both hold partitions and together all four: an eager rebalance
        # revokes the first's before either gets its new share.
        while time.monotonic() - started < 30 and not (
            assigned["first"]
            and assigned["second"]
            and len(assigned["first"]) + len(assigned["second"]) == 4
        ):
            first.poll(0.05)
            second.poll(0.05)
        rebalance_s = time.monotonic() - started
        assert assigned["first"] | assigned["second"] == {0, 1, 2, 3}
        assert assigned["first"]
        assert assigned["second"]
        assert not assigned["first"] & assigned["second"]
        assert rebalance_s < 10, f"the rebalance took {rebalance_s:.1f} s"
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


def test_end_offsets_count_exactly_what_was_written(kafka_broker: str) -> None:
    """The consumer lag in messages (the worker's mm_kafka_consumer_lag_messages)
    is the end offset minus the position: it holds only if end offsets are exact."""
    topic = unique_topic("engine.event")
    ensure_topics(kafka_broker, {topic: 2}, co_partitioned=[topic])
    landed = _produce(kafka_broker, topic, [(s, "x") for s in SYMBOLS for _ in range(7)])
    per_partition: dict[int, int] = defaultdict(int)
    for partitions in landed.values():
        per_partition[next(iter(partitions))] += 7
    consumer = _consumer(kafka_broker, unique_group())
    try:
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in (0, 1)
        }
    finally:
        consumer.close()
    assert ends == {p: (0, per_partition[p]) for p in (0, 1)}


def test_mms_topics_are_created_with_their_settings(kafka_broker: str) -> None:
    namespace = Topics(unique_topic("cfg").replace(".", "-"))
    ensure_topics(kafka_broker, mms_topics(2, namespace), namespace=namespace)
    admin = AdminClient({"bootstrap.servers": kafka_broker})
    resources = [ConfigResource("topic", namespace.name(t)) for t in names.ALL]
    configs = {
        namespace.logical(resource.name): {k: v.value for k, v in future.result(10).items()}
        for resource, future in admin.describe_configs(resources).items()
    }
    for topic in names.MARKET_DATA:
        assert configs[topic]["retention.ms"] == str(MARKET_DATA_RETENTION_MS)
        assert configs[topic]["message.timestamp.type"] == "LogAppendTime"
    assert configs[names.ENGINE]["message.timestamp.type"] == "LogAppendTime"
    # Fills are never dropped early: the broker's week, not the market data's hour.
    assert int(configs[names.ENGINE]["retention.ms"]) >= 7 * 24 * 3600 * 1000
    for topic in names.PUBLISHED:
        assert configs[topic]["message.timestamp.type"] == "CreateTime"


def test_namespaces_keep_stacks_apart_on_one_broker(kafka_broker: str) -> None:
    """Two namespaces' topics share the broker, never their records."""
    a, b = Topics(unique_topic("a").replace(".", "-")), Topics(unique_topic("b").replace(".", "-"))
    for topics in (a, b):
        ensure_topics(kafka_broker, mms_topics(1, topics), namespace=topics)
    _produce(kafka_broker, a.name(names.ENGINE), [("BTCUSDT-PERP", "only-in-a")])
    counts = _partition_counts(kafka_broker)
    assert counts[a.name(names.ENGINE)] == counts[b.name(names.ENGINE)] == 1
    consumer = _consumer(kafka_broker, unique_group())
    try:
        end = consumer.get_watermark_offsets(TopicPartition(b.name(names.ENGINE), 0), timeout=10)
    finally:
        consumer.close()
    assert end == (0, 0)


def test_a_namespace_maps_names_both_ways_and_refuses_bad_ones() -> None:
    topics = Topics("dev-alice")
    assert topics.name(names.DELTA) == "dev-alice.md.orderbook.delta.v1"
    assert topics.logical("dev-alice.md.orderbook.delta.v1") == names.DELTA
    assert Topics().name(names.DELTA) == names.DELTA  # production: the contract's names
    with pytest.raises(KeyError):
        topics.logical(names.DELTA)  # another stack's topic
    with pytest.raises(ValueError, match="topic namespace"):
        Topics("no.dots")
    assert set(names.CONSUMED).isdisjoint(names.PUBLISHED)
    assert set(names.MARKET_DATA) < set(names.CONSUMED)


def test_the_session_timeout_sets_the_heartbeat() -> None:
    production = consumer_config(bootstrap="x:1", group_id="g")
    short = consumer_config(bootstrap="x:1", group_id="g", session_timeout_ms=2_000)
    assert (production["session.timeout.ms"], production["heartbeat.interval.ms"]) == (
        45_000,
        3_000,
    )
    assert (short["session.timeout.ms"], short["heartbeat.interval.ms"]) == (2_000, 666)
