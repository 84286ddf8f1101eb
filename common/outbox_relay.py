"""The outbox relay: publishes committed `outbox` rows to Kafka (SPEC Part A
"Kafka", Part B.9), one batch per transaction.

Ordering and locking
- One relay publishes at a time. Each batch runs in one transaction that first
  takes `pg_try_advisory_xact_lock(RELAY_LOCK_KEY)`; a relay that finds it
  taken publishes nothing and tries again later (a hot standby). Two relays
  publishing at once could each send a different batch and interleave a
  symbol's events; with the lock, events leave in id order.
- Rows are read in id order and claimed with SELECT ... FOR UPDATE. Per-key
  order follows because the writers of one key serialise on that key's row
  (the pool services lock the pool row before they write the outbox row), so
  a key's ids are allocated in commit order.
- Rows are marked published only after `flush()` returned and every delivery
  report of the batch's contiguous prefix succeeded. At the first row that
  failed (delivery error, no report within the flush timeout, or an exception
  from produce) the batch stops: the delivered rows before it are marked
  published, it and every other row that failed get attempts + 1 and
  last_error, and the rows after it stay unpublished even if they were
  delivered, so a later event of the same key is never recorded as published
  ahead of an earlier one. They are sent again next time. A published row
  keeps its attempts and last_error, the record of what delayed it.

Delivery is at least once. A crash (or a lost connection to PostgreSQL) after
the broker acknowledged a batch and before the transaction committed sends the
same rows again on the next run, with the same `event_id` in the record and in
the `event_id` header: consumers deduplicate on it (KAFKA.md: the broker's
transactions are not relied upon).

Poison rows. A row whose payload does not fit its topic's schema (or whose
topic has no schema) cannot ever be published as it is. Skipping it would lose
an event silently and let its key's later events overtake it, so the relay
stops at it instead: the rows before it are published, the row gets
attempts + 1 and last_error, an ERROR is logged with its id, and everything
after it waits until someone repairs the row (fix the payload, or set
published_at by hand to drop it on purpose). The relay then backs off, so the
row's attempts count retries, not polls. A schema registry that cannot be
reached is not the row's fault: the batch is abandoned without touching any
row and retried with backoff.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from django.db import close_old_connections, connection, transaction
from django.db.models import F
from django.utils import timezone
from opentelemetry.trace import SpanKind

from common.failpoints import failpoint
from common.models import OutboxEvent
from messaging.avro import AvroCodec, EncodeError
from messaging.kafka import producer_config
from messaging.topics import Topics
from telemetry import tracing

logger = logging.getLogger(__name__)

# pg_try_advisory_xact_lock key held by the relay that is publishing (ASCII "mmoutbox").
RELAY_LOCK_KEY = 0x6D6D6F7574626F78
DEFAULT_BATCH_SIZE = 500
# librdkafka fails a message it could not deliver within this (message.timeout.ms),
# so a batch's flush ends with a report for every message; the flush waits a bit longer.
DEFAULT_DELIVERY_TIMEOUT_S = 10.0
FLUSH_MARGIN_S = 5.0
DEFAULT_POLL_INTERVAL_S = 0.2
DEFAULT_MAX_BACKOFF_S = 30.0
EVENT_ID_HEADER = "event_id"
EVENT_TYPE_HEADER = "event_type"
LAST_ERROR_MAX_CHARS = 2000

# Counters since the process started (metrics read them later).
COUNTERS: dict[str, int] = {
    "published": 0,  # rows marked published
    "failed": 0,  # rows whose delivery failed (attempts incremented)
    "poisoned": 0,  # batches stopped at a row that cannot be encoded
    "batches": 0,  # batches that published at least one row
    "lock_busy": 0,  # batches skipped because another relay held the lock
    "errors": 0,  # batches abandoned on an exception (registry, database, producer)
}
_counters_lock = threading.Lock()


def _count(**increments: int) -> None:
    with _counters_lock:
        for name, value in increments.items():
            COUNTERS[name] += value


def relay_producer_config(
    *, bootstrap: str, delivery_timeout_s: float = DEFAULT_DELIVERY_TIMEOUT_S
) -> dict[str, Any]:
    """The project's producer settings, with a delivery timeout the relay's flush outlasts."""
    return {
        **producer_config(bootstrap=bootstrap, client_id="mms-outbox-relay"),
        "message.timeout.ms": int(delivery_timeout_s * 1000),
    }


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    published: int = 0
    # The id of the row the batch stopped at (delivery failure or poison), if any.
    stopped_at: int | None = None
    error: str = ""
    poison: bool = False
    fatal: bool = False  # the producer hit a fatal error and must be recreated
    lock_busy: bool = False
    claimed: int = 0  # unpublished rows read in this batch

    @property
    def failed(self) -> bool:
        return self.stopped_at is not None


def relay_batch(
    *,
    producer: Producer,
    codec: AvroCodec,
    topics: Topics | None = None,
    limit: int = DEFAULT_BATCH_SIZE,
    flush_timeout: float = DEFAULT_DELIVERY_TIMEOUT_S + FLUSH_MARGIN_S,
) -> int:
    """Publishes up to `limit` unpublished rows in id order; returns how many were published."""
    return relay_once(
        producer=producer, codec=codec, topics=topics, limit=limit, flush_timeout=flush_timeout
    ).published


# Errors after which the idempotent producer's state no longer matches the broker's
# (a delivery timed out mid-sequence, the broker restarted): librdkafka does not
# flag them fatal, yet every later produce fails the same way until the producer
# is replaced (seen on Tansu: PRODUCER_FENCED for good after one timeout).
_STALE_PRODUCER_CODES = frozenset(
    {
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError.UNKNOWN_PRODUCER_ID,
        KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
        KafkaError.INVALID_PRODUCER_ID_MAPPING,
    }
)


def _needs_new_producer(error: object) -> bool:
    return isinstance(error, KafkaError) and (
        error.fatal() or error.code() in _STALE_PRODUCER_CODES
    )


def relay_once(
    *,
    producer: Producer,
    codec: AvroCodec,
    topics: Topics | None = None,
    limit: int = DEFAULT_BATCH_SIZE,
    flush_timeout: float = DEFAULT_DELIVERY_TIMEOUT_S + FLUSH_MARGIN_S,
) -> BatchOutcome:
    """One batch (see the module docstring), with what happened for the caller's pacing.
    Rows name logical topics; `topics` gives the broker's names (messaging/topics.py).

    Raises on a registry that cannot be reached or a database error; nothing
    is then marked and nothing was produced.
    """
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [RELAY_LOCK_KEY])
            (locked,) = cursor.fetchone() or (False,)
        if not locked:
            _count(lock_busy=1)
            return BatchOutcome(lock_busy=True)
        rows = list(
            OutboxEvent.objects.filter(published_at__isnull=True)
            .order_by("id")
            .select_for_update(skip_locked=False)[:limit]
        )
        if not rows:
            return BatchOutcome()

        values, poison = _encode(codec, rows)
        sendable = rows[: len(values)]
        reports, attempted = _produce_all(
            producer, sendable, values, flush_timeout, topics or Topics()
        )
        failpoint("outbox.published")

        delivered, failures, fatal = _sorted_reports(sendable[:attempted], reports, flush_timeout)
        if poison is not None:
            failures[poison[0].pk] = poison[1]

        now = timezone.now()
        if delivered:
            OutboxEvent.objects.filter(pk__in=delivered).update(published_at=now)
        for pk, message in failures.items():
            OutboxEvent.objects.filter(pk=pk).update(
                attempts=F("attempts") + 1, last_error=message[:LAST_ERROR_MAX_CHARS]
            )

    stopped_at = min(failures) if failures else None
    outcome = BatchOutcome(
        published=len(delivered),
        stopped_at=stopped_at,
        error=failures[stopped_at] if stopped_at is not None else "",
        poison=poison is not None and stopped_at == poison[0].pk,
        fatal=fatal,
        claimed=len(rows),
    )
    _report(outcome, failures, poison)
    return outcome


def _sorted_reports(
    rows: list[OutboxEvent], reports: dict[int, KafkaError | str | None], flush_timeout: float
) -> tuple[list[int], dict[int, str], bool]:
    """The rows delivered before the first failure, every failure, and whether one
    of them needs a new producer."""
    delivered: list[int] = []
    failures: dict[int, str] = {}
    fatal = False
    for index, row in enumerate(rows):
        error = reports.get(index, f"no delivery report within {flush_timeout:g} s")
        if error is None:
            if not failures:
                delivered.append(row.pk)
        else:
            failures[row.pk] = str(error)
            fatal = fatal or _needs_new_producer(error)
    return delivered, failures, fatal


def _report(
    outcome: BatchOutcome, failures: dict[int, str], poison: tuple[OutboxEvent, str] | None
) -> None:
    """The batch counted, and its failures logged."""
    delivery_failures = len(failures) - (1 if poison is not None else 0)
    _count(
        published=outcome.published,
        failed=delivery_failures,
        poisoned=1 if poison is not None else 0,
        batches=1 if outcome.published else 0,
    )
    if poison is not None:
        logger.error(
            "outbox row %s (%s, key %s) cannot be encoded and blocks the relay until it is"
            " repaired: %s",
            poison[0].pk,
            poison[0].topic,
            poison[0].key,
            poison[1],
        )
    if delivery_failures:
        logger.warning(
            "outbox: %d row(s) not delivered, stopped at row %s: %s",
            delivery_failures,
            outcome.stopped_at,
            outcome.error,
        )


def _encode(
    codec: AvroCodec, rows: list[OutboxEvent]
) -> tuple[list[bytes], tuple[OutboxEvent, str] | None]:
    """The encoded values of the rows up to the first poison row, and that row with its error."""
    values: list[bytes] = []
    for row in rows:
        record = {**row.payload, "event_id": str(row.event_id)}
        try:
            values.append(codec.encode(row.topic, record))
        except EncodeError as exc:  # RegistryUnavailableError propagates: not the row's fault
            return values, (row, f"cannot encode: {exc}")
    return values, None


def _produce_all(
    producer: Producer,
    rows: list[OutboxEvent],
    values: list[bytes],
    flush_timeout: float,
    topics: Topics,
) -> tuple[dict[int, KafkaError | str | None], int]:
    """Sends the rows in order and flushes.

    Returns {row index: None or its error} for the reports received, and how
    many rows were attempted: produce() stops at the first row it refuses.
    """
    reports: dict[int, KafkaError | str | None] = {}
    attempted = 0

    def on_delivery(index: int) -> Callable[[KafkaError | None, Message], None]:
        def report(error: KafkaError | None, _message: Message) -> None:
            reports[index] = error

        return report

    for index, (row, value) in enumerate(zip(rows, values, strict=True)):
        attempted = index + 1
        headers: list[tuple[str, str | bytes | None]] = [
            (EVENT_ID_HEADER, str(row.event_id).encode()),
            (EVENT_TYPE_HEADER, row.event_type.encode()),
        ]
        try:
            with tracing.span(
                f"kafka.produce {row.topic}",
                context=tracing.context_from_carrier(row.trace_context),
                kind=SpanKind.PRODUCER,
                attributes={"messaging.destination.name": row.topic, "mms.key": row.key},
            ):
                # This relay's span when it traces; else the change's own context.
                trace = tracing.carrier() or row.trace_context or {}
                headers += [(k, str(v).encode()) for k, v in trace.items()]
                send = partial(
                    producer.produce,
                    topics.name(row.topic),
                    value=value,
                    key=row.key,
                    headers=headers,
                    on_delivery=on_delivery(index),
                )
                try:
                    send()
                except BufferError:  # the local queue is full: let it drain once, then retry
                    producer.flush(flush_timeout)
                    send()
        except (BufferError, KafkaException) as exc:
            error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            reports[index] = error or f"produce failed: {exc!r}"
            break  # later rows would overtake this one
    producer.flush(flush_timeout)
    return reports, attempted


def run_relay(
    *,
    make_producer: Callable[[], Producer],
    codec: AvroCodec,
    topics: Topics | None = None,
    stop: threading.Event | None = None,
    poll_interval: float = DEFAULT_POLL_INTERVAL_S,
    limit: int = DEFAULT_BATCH_SIZE,
    flush_timeout: float = DEFAULT_DELIVERY_TIMEOUT_S + FLUSH_MARGIN_S,
    max_backoff: float = DEFAULT_MAX_BACKOFF_S,
    on_batch: Callable[[BatchOutcome], None] | None = None,
) -> None:
    """Relays batches until `stop` is set.

    Waits `poll_interval` only when there was nothing to publish (or another
    relay holds the lock) and goes on at once after a batch; backs off
    exponentially, from `poll_interval` up to `max_backoff`, after a failed
    delivery, a poison row or an exception. `make_producer` is called at start
    and again after a fatal producer error (KAFKA.md: an idempotent producer
    does not recover from some broker failures). `on_batch` sees every batch
    that published or failed.
    """
    stop = stop or threading.Event()
    producer = make_producer()
    backoff = poll_interval
    try:
        while not stop.is_set():
            try:
                outcome = relay_once(
                    producer=producer,
                    codec=codec,
                    topics=topics,
                    limit=limit,
                    flush_timeout=flush_timeout,
                )
            except Exception:
                _count(errors=1)
                logger.exception("outbox relay batch failed; retrying in %.1f s", backoff)
                close_old_connections()  # a broken connection is replaced on the next query
                stop.wait(backoff)
                backoff = min(backoff * 2, max_backoff)
                continue
            if on_batch is not None and (outcome.published or outcome.failed):
                on_batch(outcome)
            if outcome.fatal:
                logger.error("outbox relay: fatal producer error, recreating the producer")
                producer.flush(0)
                producer = make_producer()
            if outcome.failed:
                stop.wait(backoff)
                backoff = min(backoff * 2, max_backoff)
                continue
            backoff = poll_interval
            if outcome.claimed == 0:  # nothing to do, or another relay holds the lock
                stop.wait(poll_interval)
    finally:
        producer.flush(flush_timeout)
