"""Reading a topic's whole log in a test, without trusting the broker's end offsets.

Tansu's reported end offsets can be wrong (KAFKA.md), so "read until the end"
is done with a sentinel: one message with a fresh token is written to every
partition, and the log is read from the beginning until each partition's
sentinel comes back. Nothing sent before the call can then be missed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition

from quoting_worker.adapters.kafka_config import producer_config

SENTINEL_HEADER = "test-sentinel"


def assign_from_beginning(consumer: Consumer, topics: Iterable[str]) -> list[TopicPartition]:
    """Assigns every partition of `topics` to `consumer`, from the first offset."""
    metadata = consumer.list_topics(timeout=10).topics
    partitions = [
        TopicPartition(topic, number, OFFSET_BEGINNING)
        for topic in topics
        for number in metadata[topic].partitions
    ]
    consumer.assign(partitions)
    return partitions


def read_to_sentinels(
    consumer: Consumer, bootstrap: str, topics: Iterable[str], *, timeout_s: float
) -> list[Message]:
    """Every message on `topics` written before the call, in log order per partition
    (sentinels, this call's and earlier calls', left out). Fails after `timeout_s`."""
    token = uuid.uuid4().hex.encode()
    partitions = assign_from_beginning(consumer, topics)
    sentinels = Producer(producer_config(bootstrap=bootstrap, client_id="test-sentinel"))
    for tp in partitions:
        sentinels.produce(
            tp.topic, value=b"", partition=tp.partition, headers=[(SENTINEL_HEADER, token)]
        )
    assert sentinels.flush(timeout_s) == 0, "sentinels not written"
    pending = {(tp.topic, tp.partition) for tp in partitions}
    messages: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while pending:
        assert time.monotonic() < deadline, f"sentinels not read back from {sorted(pending)}"
        message = consumer.poll(0.2)
        if message is None or message.error() is not None:
            continue
        sentinel = dict(message.headers() or []).get(SENTINEL_HEADER)
        if sentinel == token:
            pending.discard((message.topic(), message.partition()))
        elif sentinel is None:
            messages.append(message)
    return messages
