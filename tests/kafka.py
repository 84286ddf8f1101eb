"""Kafka for the tests: the session's Apache Kafka node (devstack/kafka.py,
started once by the `kafka_broker` fixture of tests/conftest.py) shared through
topic namespaces.

A test that needs MMS's topics takes a `Bus`: the broker's address and a
namespace of its own (messaging/topics.py), with every MMS topic created in
it. Its consumer groups are new too (`unique_group`), so a group starting at
the earliest offset reads only what this test wrote. Only tests that stop,
kill or restart a broker start one of their own (`own_kafka`).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from devstack.kafka import KafkaNode
from devstack.standins import free_port
from messaging.kafka import ensure_topics, mms_topics
from messaging.topics import Topics


def unique_topic(base: str) -> str:
    """`base` with a random suffix: a topic no other test uses."""
    return f"{base}.{uuid.uuid4().hex[:10]}"


def unique_group(base: str = "mms-test") -> str:
    return f"{base}-{uuid.uuid4().hex[:10]}"


def unique_namespace() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class Bus:
    """A broker and a topic namespace: where one test's processes meet."""

    bootstrap: str
    topics: Topics
    # The node, when the test started one of its own (to stop, kill or restart it).
    node: KafkaNode | None = None

    @property
    def namespace(self) -> str:
        return self.topics.namespace

    def name(self, topic: str) -> str:
        """The broker's name of the logical `topic` in this namespace."""
        return self.topics.name(topic)

    @property
    def env(self) -> dict[str, str]:
        """What an MMS process (runquoter, runoutboxrelay) needs to find it."""
        return {"KAFKA_BROKERS": self.bootstrap, "KAFKA_TOPIC_NAMESPACE": self.namespace}

    @property
    def simulator_args(self) -> list[str]:
        return ["--brokers", self.bootstrap, "--topic-namespace", self.namespace]


def new_bus(bootstrap: str, partitions: int = 1) -> Bus:
    """A fresh namespace on `bootstrap` with every MMS topic in it."""
    bus = Bus(bootstrap, Topics(unique_namespace()))
    ensure_topics(bootstrap, mms_topics(partitions, bus.topics), namespace=bus.topics)
    return bus


def drop(bus: Bus) -> None:
    """Deletes the namespace's topics (not waited for: the broker does it in the background)."""
    AdminClient({"bootstrap.servers": bus.bootstrap}).delete_topics(
        list(mms_topics(1, bus.topics)), operation_timeout=0
    )


@contextlib.contextmanager
def namespace_on(bootstrap: str, partitions: int = 1) -> Iterator[Bus]:
    bus = new_bus(bootstrap, partitions)
    try:
        yield bus
    finally:
        with contextlib.suppress(Exception):
            drop(bus)


@contextlib.contextmanager
def own_kafka(home: Path) -> Iterator[KafkaNode]:
    """A Kafka node of the test's own in `home` (on free ports), for tests that
    stop, kill or restart it; stopped at the end."""
    node = KafkaNode(home=home, port=free_port(), controller_port=free_port()).start()
    try:
        yield node
    finally:
        node.stop(timeout=10)


@contextlib.contextmanager
def own_bus(home: Path, partitions: int = 1) -> Iterator[Bus]:
    """A Kafka node of the test's own with every MMS topic on it (no namespace)."""
    with own_kafka(home) as node:
        ensure_topics(node.bootstrap, mms_topics(partitions))
        yield Bus(node.bootstrap, Topics(), node=node)


def read_to_end(consumer: Consumer, topics: Iterable[str], *, timeout_s: float) -> list[Message]:
    """Every message on `topics` (the broker's names) up to their end offsets as
    of the call, in log order per partition. Fails after `timeout_s`."""
    metadata = consumer.list_topics(timeout=10).topics
    partitions = [
        TopicPartition(topic, number, OFFSET_BEGINNING)
        for topic in topics
        for number in metadata[topic].partitions
    ]
    ends = {
        (tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=10)[1]
        for tp in partitions
    }
    pending = {key for key, end in ends.items() if end > 0}
    consumer.assign(partitions)
    messages: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while pending:
        assert time.monotonic() < deadline, f"not read to the end: {sorted(pending)}"
        message = consumer.poll(0.2)
        if message is None or message.error() is not None:
            continue
        key = (message.topic(), message.partition())
        offset = message.offset()
        if key not in ends or offset is None or offset >= ends[key]:
            continue
        messages.append(message)
        if offset == ends[key] - 1:
            pending.discard(key)
    consumer.unassign()
    return messages
