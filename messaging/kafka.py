"""confluent-kafka settings for MMS's processes, and topic set-up.

One place for how MMS talks to Kafka (Apache Kafka, KRaft; in development the
node devstack/kafka.py starts, KAFKA.md):

- consumers commit offsets themselves (after the work is done), start from
  the earliest offset of a new group, and use the classic group protocol with
  range assignment (co-partitioned topics stay together);
- producers are idempotent, wait for every in-sync replica and partition
  keys as the Java client does;
- every consumed topic is keyed by symbol and has the same partition count
  (SPEC Part B.8), so the partitions a worker is assigned give it every
  topic's events for its symbols;
- the consumed topics are stamped by the broker (LogAppendTime), so a
  consumer's lag as time is measured from the broker's append, and the
  producer's share of a latency is the record's own ts_ns to that stamp;
  market-data topics keep an hour (a book is rebuilt from a snapshot), the
  others the broker's default week.

Topic names come from messaging.topics; the functions here take the broker's
names (a `Topics` maps them).
Delivery is at-least-once: consumers must be idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from messaging import topics as names
from messaging.topics import Topics

# librdkafka's default; a worker that dies without leaving the group keeps its
# symbols unquoted this long (a graceful stop leaves at once). Tests that kill
# a worker and start its successor in the same group use a short one.
DEFAULT_SESSION_TIMEOUT_MS = 45_000
DEFAULT_LINGER_MS = 5
MARKET_DATA_RETENTION_MS = 3_600_000  # an hour: a book is rebuilt from a snapshot
MARKET_DATA_SEGMENT_MS = 600_000  # segments roll so that retention can delete them


class TopicSetupError(RuntimeError):
    """The topics MMS needs could not be created."""


class TopicMismatchError(TopicSetupError):
    """Topics exist, or were asked for, with partition counts that do not fit."""


KAFKA_LOGGER = logging.getLogger("mms.kafka")


def mms_topics(partitions: int, topics: Topics | None = None) -> dict[str, int]:
    """Every topic MMS consumes or publishes (the broker's names in `topics`'
    namespace), all with `partitions` partitions."""
    topics = topics or Topics()
    return dict.fromkeys(topics.names(names.ALL), partitions)


def topic_settings(topic: str) -> dict[str, str]:
    """The broker settings a logical `topic` is created with."""
    settings: dict[str, str] = {}
    if topic in names.CONSUMED:
        settings["message.timestamp.type"] = "LogAppendTime"
    if topic in names.MARKET_DATA:
        settings["retention.ms"] = str(MARKET_DATA_RETENTION_MS)
        settings["segment.ms"] = str(MARKET_DATA_SEGMENT_MS)
    return settings


def consumer_config(
    *,
    bootstrap: str,
    group_id: str,
    client_id: str = "mms-quoter",
    session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS,
    instance_id: str | None = None,
) -> dict[str, Any]:
    """`instance_id`: static group membership (group.instance.id): a member that
    leaves and comes back within the session timeout under the same id gets its
    partitions back without a rebalance of the others."""
    static = {"group.instance.id": instance_id} if instance_id else {}
    return static | {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "group.id": group_id,
        "group.protocol": "classic",
        # "range" gives every co-partitioned topic's partition p to the same member;
        # cooperative-sticky balances topic-partitions independently and can split a
        # symbol's book from its engine events across workers.
        "partition.assignment.strategy": "range",
        "session.timeout.ms": session_timeout_ms,
        # A rebalance reaches every member within one interval (librdkafka's default
        # 3 s; a third of a shorter session).
        "heartbeat.interval.ms": min(3_000, max(100, session_timeout_ms // 3)),
        # Offsets are committed by the worker once an event's effects are stored.
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        # librdkafka's own lines through Python logging (structured, like the rest).
        "logger": KAFKA_LOGGER,
    }


def producer_config(
    *,
    bootstrap: str,
    client_id: str = "mms-quoter",
    linger_ms: int = DEFAULT_LINGER_MS,
) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": linger_ms,
        # The Java client's partitioner, so a symbol lands on the same partition
        # number whichever client (Go, Java, this one) publishes it.
        "partitioner": "murmur2_random",
        "logger": KAFKA_LOGGER,
    }


def admin_config(*, bootstrap: str, client_id: str = "mms-admin") -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap, "client.id": client_id}


def ensure_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    *,
    namespace: Topics | None = None,
    co_partitioned: Collection[str] | None = None,
    replication_factor: int = -1,
    timeout: float = 10.0,
) -> None:
    """Creates the missing `topics` ({broker's name: partitions}) and checks the
    existing ones. `namespace` maps those names to logical ones, for the settings
    each is created with (`topic_settings`).

    `co_partitioned` names the topics that must share one partition count,
    among those requested and those that exist (default: the consumed topics).
    Raises TopicMismatchError, creating nothing, if they do not, or if a topic
    exists with another count: partitions cannot be changed here, and a
    consumed topic with a different count would route a symbol's events to
    different workers.
    `replication_factor` -1 takes the broker's default.
    """
    namespace = namespace or Topics()
    group = namespace.names(names.CONSUMED) if co_partitioned is None else co_partitioned
    _check_co_partitioned(group, topics)  # before asking the broker anything
    admin = AdminClient(admin_config(bootstrap=bootstrap))
    existing = _partition_counts(admin, timeout)
    _check_counts(topics, existing)
    # Existing members of the group count too: a new topic must match them.
    _check_co_partitioned(group, {**existing, **topics})

    def settings(name: str) -> dict[str, str]:
        try:
            return topic_settings(namespace.logical(name))
        except KeyError:
            return {}

    missing = [
        NewTopic(
            name,
            num_partitions=partitions,
            replication_factor=replication_factor,
            config=settings(name),
        )
        for name, partitions in topics.items()
        if name not in existing
    ]
    if not missing:
        return
    failures: dict[str, str] = {}
    for name, future in admin.create_topics(missing, operation_timeout=timeout).items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            # Another process may have created it meanwhile: checked below.
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                failures[name] = str(exc)
    if failures:
        raise TopicSetupError(f"could not create topics on {bootstrap}: {failures}")
    _check_counts(topics, _partition_counts(admin, timeout))


def _partition_counts(admin: AdminClient, timeout: float) -> dict[str, int]:
    # All topics: asking for named ones could auto-create them on some brokers.
    metadata = admin.list_topics(timeout=timeout)
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()}


def _check_co_partitioned(group: Collection[str], counts: Mapping[str, int]) -> None:
    found = {name: counts[name] for name in group if name in counts}
    if len(set(found.values())) > 1:
        raise TopicMismatchError(f"co-partitioned topics need one partition count, got {found}")


def _check_counts(wanted: Mapping[str, int], existing: Mapping[str, int]) -> None:
    wrong = {
        name: (existing[name], partitions)
        for name, partitions in wanted.items()
        if name in existing and existing[name] != partitions
    }
    if wrong:
        detail = ", ".join(
            f"{name} has {have}, needs {need}" for name, (have, need) in wrong.items()
        )
        raise TopicMismatchError(f"topics exist with the wrong partition count: {detail}")
