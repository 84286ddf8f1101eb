"""confluent-kafka settings for the quoting worker, and topic set-up.

One place for how MMS talks to Kafka (Apache Kafka in production, the Tansu
broker in development and tests: /work/shared/KAFKA.md):

- consumers commit offsets themselves (after the work is done), start from
  the earliest offset of a new group, use the classic group protocol with
  range assignment (co-partitioned topics stay together), and wait at most `fetch_wait_max_ms` for a
  fetch, since the broker answers a waiting fetch only when that expires;
- producers are idempotent, wait for every in-sync replica and partition
  keys as the Java client does;
- every consumed topic is keyed by symbol and has the same partition count
  (SPEC Part B.8), so the partitions a worker is assigned give it every
  topic's events for its symbols.

Delivery is at-least-once: consumers must be idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

CONSUMED_TOPICS = (
    "md.orderbook.snap.v1",
    "md.orderbook.delta.v1",
    "md.mark.v1",
    "engine.event.v1",
)
PUBLISHED_TOPICS = (
    "mm.state.changed.v1",
    "mm.risk.triggered.v1",
    "mm.quote.simulated.v1",
)


@dataclass(frozen=True, slots=True)
class GroupTimeouts:
    """How fast a consumer group notices a member join or die.

    Tansu holds a JoinGroup for about half the session timeout, so the
    production values make a group join take ~23 s there; development and
    tests use short ones (join ≈ 1 s).
    """

    session_timeout_ms: int
    heartbeat_interval_ms: int


PRODUCTION_GROUP_TIMEOUTS = GroupTimeouts(session_timeout_ms=45_000, heartbeat_interval_ms=3_000)
DEVELOPMENT_GROUP_TIMEOUTS = GroupTimeouts(session_timeout_ms=2_000, heartbeat_interval_ms=300)

# Lower is lower latency and more fetch requests; 0 would make the consumer get nothing.
DEFAULT_FETCH_WAIT_MAX_MS = 5
DEFAULT_LINGER_MS = 5


class TopicSetupError(RuntimeError):
    """The topics MMS needs could not be created."""


class TopicMismatchError(TopicSetupError):
    """Topics exist, or were asked for, with partition counts that do not fit."""


KAFKA_LOGGER = logging.getLogger("mms.kafka")


def mms_topics(partitions: int) -> dict[str, int]:
    """Every topic MMS consumes or publishes, all with `partitions` partitions."""
    return dict.fromkeys((*CONSUMED_TOPICS, *PUBLISHED_TOPICS), partitions)


def consumer_config(
    *,
    bootstrap: str,
    group_id: str,
    client_id: str = "mms-quoter",
    timeouts: GroupTimeouts = PRODUCTION_GROUP_TIMEOUTS,
    fetch_wait_max_ms: int = DEFAULT_FETCH_WAIT_MAX_MS,
) -> dict[str, Any]:
    if fetch_wait_max_ms < 1:
        raise ValueError("fetch_wait_max_ms must be ≥ 1: at 0 the consumer receives nothing")
    return {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "group.id": group_id,
        "group.protocol": "classic",
        # "range" gives every co-partitioned topic's partition p to the same member;
        # cooperative-sticky balances topic-partitions independently and can split a
        # symbol's book from its engine events across workers.
        "partition.assignment.strategy": "range",
        "session.timeout.ms": timeouts.session_timeout_ms,
        "heartbeat.interval.ms": timeouts.heartbeat_interval_ms,
        "fetch.wait.max.ms": fetch_wait_max_ms,
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
    co_partitioned: Collection[str] | None = None,
    replication_factor: int = -1,
    timeout: float = 10.0,
) -> None:
    """Creates the missing `topics` ({name: partitions}) and checks the existing ones.

    `co_partitioned` names the topics that must share one partition count,
    among those requested and those that exist (default: CONSUMED_TOPICS).
    Raises TopicMismatchError, creating nothing, if they do not, or if a topic
    exists with another count: partitions cannot be changed here, and a
    consumed topic with a different count would route a symbol's events to
    different workers.
    `replication_factor` -1 takes the broker's default.
    """
    group = CONSUMED_TOPICS if co_partitioned is None else co_partitioned
    _check_co_partitioned(group, topics)  # before asking the broker anything
    admin = AdminClient(admin_config(bootstrap=bootstrap))
    existing = _partition_counts(admin, timeout)
    _check_counts(topics, existing)
    # Existing members of the group count too: a new topic must match them.
    _check_co_partitioned(group, {**existing, **topics})

    missing = [
        NewTopic(name, num_partitions=partitions, replication_factor=replication_factor)
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
